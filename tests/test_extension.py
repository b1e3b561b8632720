"""The compiled extension loads only with the torch it was built against."""

import importlib
import re
import subprocess
import sys

import pytest
import torch

import pydqn
from pydqn._extension import REBUILD_HINT, check_torch_version

_build_info = importlib.import_module("pydqn._build_info")  # written by the build, not in the tree


def test_built_against_the_running_torch():
    assert _build_info.TORCH_VERSION.split(".")[:2] == torch.__version__.split(".")[:2]
    assert pydqn.replay.buffer._C.TORCH_VERSION == _build_info.TORCH_VERSION


@pytest.mark.parametrize("built,running", [("2.13.0+cpu", "2.14.1"), ("2.13.0", "3.13.0")])
def test_other_major_minor_is_refused(built, running):
    with pytest.raises(ImportError, match=re.escape(f"built against torch {built}, but torch {running}")):
        check_torch_version(built, running)


def test_same_major_minor_is_accepted():
    check_torch_version("2.13.0+cpu", "2.13.1+cu130")


def test_import_with_another_torch_says_how_to_rebuild():
    code = "import torch; torch.__version__ = '1.99.0'; import pydqn"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert result.returncode != 0
    assert "ImportError: pydqn's C++ extension was built against torch" in result.stderr
    assert REBUILD_HINT in result.stderr
    assert "undefined symbol" not in result.stderr


def test_a_source_tree_shadowing_the_installed_package_says_so(tmp_path):
    """`python -c "import pydqn"` from a checkout's root, after `pip install .`, imports the source
    tree (no built extension): the error says so, and what to do."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import pydqn

    source = Path(pydqn.__file__).parent
    checkout = tmp_path / "checkout"
    shutil.copytree(
        source, checkout / "pydqn", ignore=shutil.ignore_patterns("_build_info.py", "_C*.so", "__pycache__")
    )
    (checkout / "pyproject.toml").write_text("[project]\nname = 'pydqn'\n")
    # An editable install's finder would serve the extension to any tree: leave it out, as
    # `pip install .` has none.
    code = (
        "import sys; sys.meta_path = [f for f in sys.meta_path if 'editable' not in type(f).__module__]; "
        "import pydqn"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert (
        f"pydqn was imported from the source tree {checkout / 'pydqn'}, which has no built extension"
        in message
    )
    assert "shadows the installed pydqn" in message and "Run Python from another directory" in message
