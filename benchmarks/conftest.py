import pytest
import torch
from bench_support import CAPACITY, MEMORY, filled

from pydqn.bench.replay import NumpyGather


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Fixed thread count: torch's default of 2 collapses when the other core is busy."""
    torch.set_num_threads(1)


def pytest_terminal_summary(terminalreporter):
    if MEMORY:
        terminalreporter.section("bytes per transition (stored, once full)")
        for name, per_transition in MEMORY.items():
            terminalreporter.write_line(f"{name:<16}{per_transition:>10,.0f} B")
        if len(MEMORY) == 2:
            ratio = MEMORY["PyReplayBuffer"] / MEMORY["ReplayBuffer"]
            terminalreporter.write_line(f"ReplayBuffer uses 1/{ratio:.1f} of PyReplayBuffer's memory")


@pytest.fixture(scope="module")
def single_env():
    return filled(num_envs=1)


@pytest.fixture(scope="module")
def eight_envs():
    return filled(num_envs=8)


@pytest.fixture(scope="module")
def numpy_gather():
    return NumpyGather(CAPACITY + 1000)
