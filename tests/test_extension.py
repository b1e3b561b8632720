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
