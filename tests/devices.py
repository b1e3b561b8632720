"""Run a test on every device: ``@pytest.mark.parametrize("device", DEVICES)``; the CUDA variant
is marked ``cuda`` (skipped without a GPU, failed instead under PYDQN_REQUIRE_CUDA=1)."""

import pytest

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
