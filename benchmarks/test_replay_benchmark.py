"""ReplayBuffer vs PyReplayBuffer at Atari shapes, (4, 84, 84) uint8, capacity 100k.

Run: pytest benchmarks/ --benchmark-columns=median,iqr,ops --benchmark-group-by=group
"""

import pytest
from bench_support import MEMORY, bench_add

BUFFERS = ["ReplayBuffer", "PyReplayBuffer"]


@pytest.mark.parametrize("name", BUFFERS)
def test_add_one_transition(benchmark, single_env, name):
    bench_add(benchmark, single_env, name, rounds=2000)


@pytest.mark.parametrize("batch_size", [32, 256])
@pytest.mark.parametrize("name", BUFFERS)
def test_sample(benchmark, single_env, name, batch_size):
    buffers, _ = single_env
    benchmark.group = f"sample B={batch_size}"
    benchmark(buffers[name].sample, batch_size)


@pytest.mark.parametrize("batch_size", [32, 256])
def test_sample_numpy_gather_reference(benchmark, numpy_gather, batch_size):
    """The same bytes gathered by plain numpy from one contiguous frame array."""
    benchmark.group = f"sample B={batch_size}"
    benchmark(numpy_gather.sample, batch_size)


@pytest.mark.parametrize("name", BUFFERS)
def test_bytes_per_transition(benchmark, single_env, name):
    """Stored bytes once full (recorded at fill time), in the JSON (extra_info) and the summary."""
    benchmark.group = "bytes per transition (time: reading nbytes)"
    benchmark.pedantic(lambda: single_env[0][name].nbytes, rounds=1)
    benchmark.extra_info["bytes_per_transition"] = MEMORY[name]
