import os

import numpy as np
import pytest
import torch

from pydqn.bench.replay import AtariStreams, NumpyGather, fill, make_buffers

CAPACITY = int(os.environ.get("PYDQN_BENCH_CAPACITY", "100000"))


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Fixed thread count: torch's default of 2 collapses when the other core is busy."""
    torch.set_num_threads(1)


def filled(num_envs: int):
    """Both buffers filled past capacity, each with its own stream generator.

    Stored bytes are recorded here, before any sample() has cached output blocks (which nbytes
    counts too).
    """
    streams = {}
    buffers = make_buffers(CAPACITY, num_envs)
    for name, buffer in buffers.items():
        streams[name] = AtariStreams(num_envs)
        fill(buffer, streams[name], CAPACITY + 1000)
        if num_envs == 1:
            MEMORY[name] = buffer.nbytes / CAPACITY
    return buffers, streams


MEMORY: dict[str, float] = {}


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


def bench_add(benchmark, filled_buffers, name: str, rounds: int) -> None:
    """Time add() of one row per env stream, with fresh rows made outside the timed call."""
    buffers, streams = filled_buffers
    envs = np.arange(streams[name].num_envs)
    benchmark.group = f"add {len(envs)} (num_envs={len(envs)})"
    benchmark.pedantic(lambda rows: buffers[name].add(**rows),
                       setup=lambda: ((streams[name].rows(envs),), {}), rounds=rounds)
