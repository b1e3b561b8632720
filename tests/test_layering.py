"""The package's layering: every module imports only the layers below its own, nothing imports in a
circle, each subpackage imports on its own, and the README's layout tree lists the package's files.

LAYERS lists the layers, lowest first: a module may import its own subpackage and any lower layer;
the subpackages of one layer do not import each other.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pydqn"

LAYERS: list[set[str]] = [
    {"pydqn._C", "pydqn._build_info", "pydqn._extension", "pydqn._moved", "pydqn.device", "pydqn.settings"},
    {"pydqn.replay", "pydqn.ops", "pydqn.envs"},
    {"pydqn.agent", "pydqn.runs"},
    {"pydqn.report"},
    {"pydqn.training"},
    {"pydqn.integrations", "pydqn.distributed"},
    {"pydqn.bench"},
    {"pydqn.cli"},
    {"pydqn.__main__"},
]
LAYER_OF = {component: level for level, components in enumerate(LAYERS) for component in components}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def component(module: str) -> str:
    """The layer unit a module belongs to: its subpackage (pydqn.replay) or top module (pydqn.cli)."""
    return ".".join(module.split(".")[:2])


def resolve(importer: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The pydqn modules an import statement loads (a name imported from a package that is not
    a submodule counts as the package itself)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name.split(".")[0] == "pydqn"}
    base = node.module or ""
    if node.level:
        anchor = importer.split(".")
        if importer not in PACKAGES:
            anchor = anchor[:-1]
        anchor = anchor[: len(anchor) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    if base.split(".")[0] != "pydqn":
        return set()
    found = set()
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        found.add(candidate if candidate in MODULES or candidate == "pydqn._C" else base)
    return found


def imports_of(module: str) -> set[str]:
    """Every pydqn module that ``module`` imports, at the top or inside a function."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= resolve(module, node)
    return found - {module}


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer():
    unplaced = sorted({component(m) for m in MODULES if m != "pydqn"} - set(LAYER_OF))
    assert not unplaced, f"add these to LAYERS in {Path(__file__).name}: {unplaced}"


def test_no_module_imports_up_or_sideways():
    violations = []
    for module, imported in GRAPH.items():
        if module == "pydqn":
            continue  # the facade re-exports the public names
        own = component(module)
        for target in sorted(imported):
            if target == "pydqn":
                violations.append(f"{module} imports the top-level package pydqn (a layer above it)")
            elif component(target) != own and LAYER_OF[component(target)] >= LAYER_OF[own]:
                violations.append(
                    f"{module} (layer {LAYER_OF[own]}) imports {target} (layer {LAYER_OF[component(target)]})"
                )
    assert not violations, "\n".join(violations)


def test_no_import_circles():
    """Depth-first search for a back edge over all imports, lazy ones included."""
    state: dict[str, str] = {}
    path: list[str] = []
    circles = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for target in sorted(GRAPH.get(module, ())):
            if target not in GRAPH:
                continue  # pydqn._C, pydqn._build_info: built, not in the tree
            if state.get(target) == "open":
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert not circles, "\n".join(circles)


def test_the_checker_sees_a_planted_upward_import_and_circle(tmp_path):
    """The rules above can fail: an upward import and a circle, as the parser sees them."""
    upward = ast.parse("from pydqn.training.trainer import Trainer").body[0]
    assert isinstance(upward, ast.ImportFrom)
    assert resolve("pydqn.replay.buffer", upward) == {"pydqn.training.trainer"}
    assert LAYER_OF[component("pydqn.training.trainer")] > LAYER_OF[component("pydqn.replay.buffer")]
    relative = ast.parse("from . import checks").body[0]
    assert isinstance(relative, ast.ImportFrom)
    assert resolve("pydqn.replay.buffer", relative) == {"pydqn.replay.checks"}
    assert resolve("pydqn.replay", relative) == {"pydqn.replay.checks"}


@pytest.mark.parametrize("package", [*sorted(PACKAGES - {"pydqn"}), "pydqn.cli"])
def test_each_subpackage_imports_alone_in_a_fresh_interpreter(package):
    result = subprocess.run(
        [sys.executable, "-c", f"import {package}"], capture_output=True, text=True, cwd="/"
    )
    assert result.returncode == 0, result.stderr


def test_the_package_exports_nothing_by_accident():
    """After ``import pydqn`` (in a fresh interpreter), its public names are ``__all__`` and the
    subpackages the import loaded."""
    code = (
        "import pydqn; print(*sorted(n for n in vars(pydqn) if not n.startswith('_'))); print(*pydqn.__all__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    public, exported = (set(line.split()) for line in result.stdout.splitlines())
    subpackages = {name.split(".")[1] for name in MODULES if name.count(".") >= 1}
    assert public - subpackages == exported


def readme_layout_modules() -> set[str]:
    """The pydqn .py files that README.md's layout tree names: the indented lines under its
    ``pydqn/`` line, each starting with a subpackage folder (``replay/``) or naming top modules."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- layout -->\s*```\n(.*?)```", readme, re.S)
    assert block, "README.md: no ``` block after <!-- layout -->"
    listed, inside, folder = set(), False, "pydqn/"
    for line in block.group(1).splitlines():
        if not line.startswith(" "):
            inside = line.startswith("pydqn/")
            continue
        if not inside:
            continue
        if not line.startswith("   "):  # an entry; deeper lines continue its description
            first = line.split()[0]
            folder = f"pydqn/{first}" if first.endswith("/") else "pydqn/"
        listed |= {folder + name for name in re.findall(r"\b\w+\.py\b", line)}
    return listed


def test_the_readme_layout_tree_lists_every_module():
    listed = readme_layout_modules()
    actual = {str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}
    actual -= {"pydqn/_build_info.py"}  # written by the build
    assert listed == actual, (
        f"missing from README.md's layout: {sorted(actual - listed)}; "
        f"not in the package: {sorted(listed - actual)}"
    )
