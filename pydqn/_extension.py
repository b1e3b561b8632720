"""Loads the private extension `pydqn._C`, refusing a torch it was not built against."""

from __future__ import annotations

import importlib
import importlib.metadata
import types
from pathlib import Path

import torch

REBUILD_HINT = "pip install --no-build-isolation --force-reinstall --no-deps ."
EDITABLE_HINT = "pip install --no-build-isolation -e ."


def _major_minor(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("+")[0].split(".")[:2])


def check_torch_version(built_with: str, running: str) -> None:
    """Raise ImportError if `running` torch differs from `built_with` in major.minor."""
    if _major_minor(built_with) != _major_minor(running):
        raise ImportError(
            f"pydqn's C++ extension was built against torch {built_with}, but torch {running} is "
            f"installed; extensions only load with the torch they were built for. Rebuild pydqn in "
            f"this environment from its source checkout: `{REBUILD_HINT}`"
        )


def installed_elsewhere() -> Path | None:
    """Where pydqn is installed, when the package being imported is a source checkout's tree
    instead (found first on sys.path: the current directory, or PYTHONPATH)."""
    here = Path(__file__).resolve().parent
    if not (here.parent / "pyproject.toml").is_file():
        return None
    try:
        distribution = importlib.metadata.distribution("pydqn")
    except importlib.metadata.PackageNotFoundError:
        return None
    return Path(str(distribution.locate_file(""))).resolve()


def load_extension() -> types.ModuleType:
    """Import `pydqn._C` after checking the torch version recorded at build time."""
    try:
        build_info = importlib.import_module("pydqn._build_info")
    except ImportError as error:
        shadowed = installed_elsewhere()
        if shadowed is not None:
            raise ImportError(
                f"pydqn was imported from the source tree {Path(__file__).parent}, which has no built "
                f"extension: it shadows the installed pydqn in {shadowed} because Python looks in "
                "the current directory (or PYTHONPATH) first. Run Python from another directory, "
                f"or install the checkout in editable mode: `{EDITABLE_HINT}`"
            ) from error
        raise ImportError(
            "pydqn's C++ extension is not built (pydqn/_build_info.py is missing). Install pydqn "
            f"with `pip install .`, or for development `{EDITABLE_HINT}`"
        ) from error
    check_torch_version(build_info.TORCH_VERSION, torch.__version__)
    return importlib.import_module("pydqn._C")
