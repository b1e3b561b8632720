"""Prioritized replay at 1M transitions: the C++ buffer's trees vs the teaching-style Python
segment trees (PyReplayBuffer), and prioritized vs uniform sampling in the C++ buffer.

Run: pytest benchmarks/test_prioritized_benchmark.py --benchmark-columns=median,iqr,ops
     --benchmark-group-by=group   (PYDQN_PER_CAPACITY=100000 for a quicker run)
"""

import os

import numpy as np
import pytest
import torch

from pydqn.bench.prioritized import BETA, PRIORITIZED, UNIFORM, make_filled_buffers

CAPACITY = int(os.environ.get("PYDQN_PER_CAPACITY", "1000000"))


@pytest.fixture(scope="module")
def buffers():
    return make_filled_buffers(CAPACITY)


@pytest.mark.parametrize("batch_size", [32, 256])
@pytest.mark.parametrize("name", PRIORITIZED)
def test_prioritized_sample(benchmark, buffers, name, batch_size):
    benchmark.group = f"sample B={batch_size}, {CAPACITY:,} transitions"
    benchmark(buffers[name].sample, batch_size, beta=BETA)


@pytest.mark.parametrize("batch_size", [32, 256])
def test_uniform_sample(benchmark, buffers, batch_size):
    benchmark.group = f"sample B={batch_size}, {CAPACITY:,} transitions"
    benchmark(buffers[UNIFORM].sample, batch_size)


@pytest.mark.parametrize("name", PRIORITIZED)
def test_update_priorities(benchmark, buffers, name):
    benchmark.group = f"update_priorities B=32, {CAPACITY:,} transitions"
    rng = np.random.default_rng(1)

    def batch():
        return (
            torch.from_numpy(rng.integers(0, CAPACITY, 32)),
            torch.from_numpy(10.0 ** rng.uniform(-2, 2, 32)),
        ), {}

    benchmark.pedantic(buffers[name].update_priorities, setup=batch, rounds=2000)
