"""The Ape-X settings: what goes together, the rate limiter's figures, each actor's epsilon."""

import itertools
from pathlib import Path

import pytest

from pydqn.distributed.exploration import ActorExploration, apex_epsilon
from pydqn.settings import SettingError
from pydqn.training.config import build_config


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"actors": 2, "replay": "python"}, "actors: the learner ingests and samples on two threads"),
        ({"actors": 2, "asynchronous": True}, "asynchronous: --async and --actors are two trainers"),
        ({"ray_address": "auto"}, "ray_address: joins a Ray cluster for --actors N"),
        ({"actors": 2, "ray_address": "auto", "ray_num_cpus": 4}, "ray_num_cpus: sizes a local Ray cluster"),
        (
            {"actors": 2, "rate_error_buffer": 10},
            r"rate_error_buffer: expected at least 1600 \(one chunk of 200",
        ),
        ({"ray_num_cpus": 4}, "ray_num_cpus: sizes a Ray cluster for --actors N"),
        ({"actors": 2, "chunk_steps": 30_000}, r"chunk_steps: a chunk of .* = 120,000 rows must fit"),
        (
            {"actors": 2, "buffer_size": 100, "batch_size": 32},
            r"chunk_steps: .* = 200 rows must fit the buffer",
        ),
        ({"actors": -1}, "actors: expected"),
        ({"envs_per_actor": 0}, "envs_per_actor: expected"),
        ({"actor_exploration": "greedy"}, "actor_exploration: expected"),
    ],
)
def test_settings_that_do_not_go_together_are_refused_by_name(changes, message):
    with pytest.raises(SettingError, match=message):
        build_config(overrides=changes)


def test_the_replay_ratio_and_error_buffer_follow_the_sync_trainers_settings():
    config = build_config(overrides={"actors": 3, "batch_size": 32, "train_frequency": 4, "chunk_steps": 50})
    assert config.samples_per_insert == 8.0  # 32 samples per 4 transitions
    assert config.chunk_rows == 200  # 50 steps of 4 envs (envs_per_actor's default)
    assert config.error_buffer == 2 * 8.0 * 200
    assert config.replay_streams == 12
    assert build_config(overrides={"actors": 3, "rate_error_buffer": 5000}).error_buffer == 5000


def test_apex_epsilons_spread_from_base_to_base_to_the_one_plus_alpha():
    rates = [apex_epsilon(i, 8, 0.4, 7.0) for i in range(8)]
    assert rates[0] == pytest.approx(0.4) and rates[-1] == pytest.approx(0.4**8)
    assert all(a > b for a, b in itertools.pairwise(rates))
    assert rates[3] == pytest.approx(0.4 ** (1 + 7.0 * 3 / 7))
    assert apex_epsilon(0, 1, 0.4, 7.0) == 0.4


def test_schedule_exploration_follows_the_runs_epsilon_schedule():
    config = build_config(
        overrides={"actors": 2, "actor_exploration": "schedule", "total_steps": 1000, "epsilon_fraction": 0.5}
    )
    exploration = ActorExploration(config, 1)
    assert exploration(0) == config.epsilon_start
    assert exploration(250) == pytest.approx((config.epsilon_start + config.epsilon_end) / 2)
    assert exploration(900) == pytest.approx(config.epsilon_end)
    fixed = ActorExploration(build_config(overrides={"actors": 2}), 1)
    assert fixed(0) == fixed(10**6) == pytest.approx(0.4**8)


def test_ray_starts_where_its_workers_import_the_installed_pydqn(tmp_path, monkeypatch):
    """Ray's workers put the driver's directory first on sys.path: from a checkout's root they
    would import its source tree, not the installed package."""
    from pydqn.distributed.cluster import PACKAGE, workers_import_this_pydqn

    checkout = tmp_path / "checkout"
    (checkout / "pydqn").mkdir(parents=True)
    monkeypatch.chdir(checkout)
    with workers_import_this_pydqn():
        assert Path.cwd() == PACKAGE.parent and (Path.cwd() / "pydqn").resolve() == PACKAGE
    assert Path.cwd() == checkout
    monkeypatch.chdir(tmp_path)  # no pydqn here: the user's directory stays (their env modules)
    with workers_import_this_pydqn():
        assert Path.cwd() == tmp_path
