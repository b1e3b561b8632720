"""add() of 8 rows at once (num_envs=8), in its own module so that its 100k-transition buffers
are not alive together with the single-env ones."""

import numpy as np
import pytest


@pytest.mark.parametrize("name", ["ReplayBuffer", "PyReplayBuffer"])
def test_add_eight_transitions(benchmark, eight_envs, name):
    buffers, streams = eight_envs
    benchmark.group = "add 8 (num_envs=8)"
    envs = np.arange(8)
    benchmark.pedantic(lambda rows: buffers[name].add(**rows),
                       setup=lambda: ((streams[name].rows(envs),), {}), rounds=1000)
