"""SB3's ReplayBuffer (plain and optimize_memory_usage) against pydqn's drop-in, fed the same
SB3-style calls at Atari shapes, capacity 100k; and SB3's DQN.learn with each.

Run: pytest benchmarks/test_sb3_benchmark.py --benchmark-columns=median,iqr,ops --benchmark-group-by=group
"""

import os
from functools import partial

import pytest
from bench_support import CAPACITY

pytest.importorskip("stable_baselines3")
from pydqn.bench.replay import AtariStreams
from pydqn.bench.sb3 import COLUMNS, bytes_per_transition, filled, run_learn_bench, sb3_call

LEARN_STEPS = int(os.environ.get("PYDQN_BENCH_LEARN_STEPS", "4000"))


@pytest.fixture(scope="module")
def single_env():
    return filled(CAPACITY, 1)


@pytest.fixture(scope="module")
def eight_envs():
    return filled(CAPACITY, 8)


@pytest.mark.parametrize("name", COLUMNS)
@pytest.mark.parametrize("envs", ["single_env", "eight_envs"])
def test_add(benchmark, request, envs, name):
    buffers = request.getfixturevalue(envs)
    buffer = buffers[name]
    streams = AtariStreams(buffer.n_envs, seed=1)
    benchmark.group = f"SB3 add (n_envs={buffer.n_envs})"
    benchmark.pedantic(buffer.add, setup=lambda: (sb3_call(streams), {}), rounds=1000)


@pytest.mark.parametrize("batch_size", [32, 256])
@pytest.mark.parametrize("name", COLUMNS)
def test_sample(benchmark, single_env, name, batch_size):
    benchmark.group = f"SB3 sample B={batch_size} (ReplayBufferSamples on the CPU)"
    benchmark(partial(single_env[name].sample, batch_size))


@pytest.mark.parametrize("name", COLUMNS)
def test_bytes_per_transition(benchmark, single_env, name):
    benchmark.group = "SB3 bytes per transition (time: reading them)"
    per_transition = benchmark.pedantic(bytes_per_transition, args=(single_env[name],), rounds=1)
    benchmark.extra_info["bytes_per_transition"] = per_transition


@pytest.mark.parametrize("name", COLUMNS)
def test_save_replay_buffer(benchmark, single_env, name, tmp_path):
    from stable_baselines3.common.save_util import save_to_pkl

    path = tmp_path / "replay.pkl"
    benchmark.group = "SB3 save_replay_buffer"
    benchmark.pedantic(save_to_pkl, args=(path, single_env[name]), rounds=1)
    benchmark.extra_info["file_bytes"] = path.stat().st_size


def test_dqn_learn_steps_per_second(benchmark):
    """SB3's DQN.learn on Pong, the same configuration with each buffer (one round: minutes)."""
    benchmark.group = "SB3 DQN.learn"
    row = benchmark.pedantic(
        run_learn_bench,
        kwargs=dict(steps=LEARN_STEPS, learning_starts=max(LEARN_STEPS // 2, 64), buffer_size=CAPACITY),
        rounds=1,
    )
    benchmark.extra_info.update({f"{name} steps/s": rate for name, rate in row.values.items()})
