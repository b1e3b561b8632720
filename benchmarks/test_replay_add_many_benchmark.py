"""add() of 8 rows at once (num_envs=8), in its own module so that its 100k-transition buffers
are not alive together with the single-env ones."""

import pytest
from bench_support import bench_add


@pytest.mark.parametrize("name", ["ReplayBuffer", "PyReplayBuffer"])
def test_add_eight_transitions(benchmark, eight_envs, name):
    bench_add(benchmark, eight_envs, name, rounds=1000)
