"""What the benchmark modules share: the capacity, filled buffers, the add() timing, devices."""

import os

import numpy as np
import pytest
import torch

from pydqn._extension import load_extension
from pydqn.bench.replay import AtariStreams, fill, make_buffers

CAPACITY = int(os.environ.get("PYDQN_BENCH_CAPACITY", "100000"))
MEMORY: dict[str, float] = {}  # bytes per stored transition, by buffer, for the summary


def cuda_ready() -> bool:
    return torch.cuda.is_available() and load_extension().WITH_CUDA


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not cuda_ready(), reason="needs a GPU"))]


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


def bench_add(benchmark, filled_buffers, name: str, rounds: int) -> None:
    """Time add() of one row per env stream, with fresh rows made outside the timed call."""
    buffers, streams = filled_buffers
    envs = np.arange(streams[name].num_envs)
    benchmark.group = f"add {len(envs)} (num_envs={len(envs)})"
    benchmark.pedantic(
        lambda rows: buffers[name].add(**rows), setup=lambda: ((streams[name].rows(envs),), {}), rounds=rounds
    )
