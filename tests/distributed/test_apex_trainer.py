"""The Ape-X trainer on a local Ray cluster (num_cpus=2, started once for the module): exactness
through the wire, actor faults and restarts, the replay ratio, learner faults, refusals."""

import csv
import os
import sys
import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import stamped_envs  # noqa: E402
from stamped_envs import StampedEnvs, check_transition, stamp  # noqa: E402

from pydqn.distributed import ApexTrainer, make_trainer, train  # noqa: E402
from pydqn.distributed.cluster import RayCluster, workers_import_this_pydqn  # noqa: E402
from pydqn.distributed.fleet import ActorFailed, Delivery  # noqa: E402
from pydqn.runs.layout import CHECKPOINT  # noqa: E402
from pydqn.settings import SettingError  # noqa: E402
from pydqn.training import train as train_locally  # noqa: E402
from pydqn.training.config import build_config  # noqa: E402
from pydqn.training.evaluate import evaluate  # noqa: E402

STAMPED = {
    "actors": 2,
    "envs_per_actor": 2,
    "chunk_steps": 7,  # chunks end mid-episode and episodes end mid-chunk
    "n_step": 3,
    "total_steps": 1_200,
    "learning_starts": 200,
    "buffer_size": 5_000,  # keeps every transition
    "batch_size": 32,
    "train_frequency": 4,
    "log_interval": 200,
    "checkpoint_interval": 100_000,
    "device": "cpu",
    "tensorboard": False,
    "eval_interval": 0,
}


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    # The actors unpickle the stamped envs' factory: send its module by value, not by name.
    ray.cloudpickle.register_pickle_by_value(stamped_envs)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the failing envs below
    with workers_import_this_pydqn():  # pytest runs from the checkout's root in CI
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def stored_transitions(trainer):
    """Every stored transition, drawn many times over (uniform sampling with replacement)."""
    batches = [trainer.buffer.sample(256) for _ in range(40)]
    return [
        (
            b.obs[i].numpy(),
            int(b.action[i]),
            float(b.reward[i]),
            b.next_obs[i].numpy(),
            bool(b.terminated[i]),
            bool(b.truncated[i]),
            float(b.discount[i]),
        )
        for b in batches
        for i in range(len(b.action))
    ]


def run_stamped(tmp_path, during=None, **changes):
    config = build_config(overrides={**STAMPED, **changes})
    trainer = make_trainer(config, tmp_path, env_factory=StampedEnvs)
    assert isinstance(trainer, ApexTrainer)
    watcher = threading.Thread(target=during, args=(trainer,), daemon=True) if during else None
    try:
        if watcher:
            watcher.start()
        result = trainer.run()
        return trainer, result
    finally:
        trainer.close()


def assert_actors_stopped(trainer):
    for handle in trainer.fleet.handles:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(handle.__ray_ready__.remote(), timeout=30)


def test_every_stored_transition_is_what_an_actor_stepped(tmp_path):
    trainer, result = run_stamped(tmp_path)
    config = trainer.config
    assert result.steps >= config.total_steps
    transitions = stored_transitions(trainer)
    streams = set()
    for transition in transitions:
        check_transition(transition, config.n_step, config.learner.gamma, cut_allowed=False)
        streams.add(stamp(transition[0][-1])[:2])
    assert len(streams) == 4  # both envs of both actors (their seeds differ)
    assert any(t[4] for t in transitions) and any(t[5] for t in transitions)  # both kinds of end
    # Rows dropped at resets aside, every step of every env went into the buffer.
    rows = read_csv(tmp_path / "metrics.csv")
    assert int(rows[-1]["inserted"]) == trainer.ingested
    assert trainer.ingested > 0.8 * result.steps
    assert_actors_stopped(trainer)


def test_a_killed_actor_is_restarted_and_nothing_wrong_is_stored(tmp_path):
    killed = threading.Event()
    versions: list[int] = []  # the weights version of each chunk delivered after the kill

    def kill_actor_0(trainer):
        while trainer.fleet is None or trainer.step < 400:
            time.sleep(0.01)
        fleet, wait = trainer.fleet, trainer.fleet.wait

        def recording_wait(timeout):
            events = wait(timeout)
            versions.extend(e.report.weights_version for e in events if isinstance(e, Delivery))
            return events

        fleet.wait = recording_wait
        ray.kill(fleet.handles[0], no_restart=False)  # the process dies mid-collect
        killed.set()

    trainer, result = run_stamped(tmp_path, during=kill_actor_0, total_steps=2_000)
    assert killed.is_set() and trainer.fleet.restarts[0] >= 1 and trainer.fleet.restarts[1] == 0
    # The restart was counted when the new process's first report came (recorded here): it acted
    # with the published weights from its first chunk on, the one Ray retried included, not with
    # its random initial ones (version -1).
    assert versions and min(versions) >= 0
    assert result.steps >= 2_000  # training went on
    for t in stored_transitions(trainer):
        check_transition(t, trainer.config.n_step, trainer.config.learner.gamma, cut_allowed=True)
    assert int(read_csv(tmp_path / "metrics.csv")[-1]["actor_restarts"]) >= 1


class FailingOnce(StampedEnvs):
    """Raises in one step of its first life only (a marker file remembers, across processes)."""

    marker = ""

    def step(self, actions):
        if self.source == 10_008 % 256 and not os.path.exists(self.marker) and self.t.max() >= 2:
            open(self.marker, "w").close()
            raise RuntimeError("the emulator crashed")
        return super().step(actions)


class AlwaysFailing(StampedEnvs):
    def step(self, actions):
        raise RuntimeError("the emulator crashed")


def test_an_actor_whose_env_raises_is_restarted_and_the_run_goes_on(tmp_path, capfd):
    FailingOnce.marker = str(tmp_path / "crashed")

    def factory(num_envs, seed):
        return FailingOnce(num_envs, seed)

    config = build_config(overrides=STAMPED)
    trainer = make_trainer(config, tmp_path / "run", env_factory=factory)
    assert isinstance(trainer, ApexTrainer)
    try:
        result = trainer.run()
    finally:
        trainer.close()
    assert os.path.exists(FailingOnce.marker)
    assert trainer.fleet is not None and trainer.fleet.restarts == [1, 0]
    assert result.steps >= config.total_steps
    assert "actor 0 failed (RuntimeError: the emulator crashed)" in capfd.readouterr().err


def test_an_actor_that_keeps_failing_stops_the_run_with_a_checkpoint(tmp_path):
    config = build_config(overrides={**STAMPED, "actor_max_restarts": 1})
    trainer = make_trainer(config, tmp_path, env_factory=AlwaysFailing)
    assert isinstance(trainer, ApexTrainer)
    try:
        with pytest.raises(ActorFailed, match=r"actor \d failed 2 times, more than actor_max_restarts=1"):
            trainer.run()
    finally:
        trainer.close()
    assert (tmp_path / CHECKPOINT).is_file()
    assert_actors_stopped(trainer)


def test_a_learner_fault_stops_every_actor_and_writes_the_checkpoint(tmp_path):
    def break_the_learner(trainer):
        while trainer.learner.updates < 20:
            time.sleep(0.01)
        trainer.learner.update = lambda batch: (_ for _ in ()).throw(FloatingPointError("the loss is NaN"))

    trainer = make_trainer(
        build_config(overrides={**STAMPED, "total_steps": 100_000}), tmp_path, env_factory=StampedEnvs
    )
    assert isinstance(trainer, ApexTrainer)
    threading.Thread(target=break_the_learner, args=(trainer,), daemon=True).start()
    try:
        with pytest.raises(FloatingPointError, match="the loss is NaN"):
            trainer.run()
    finally:
        trainer.close()
    assert (tmp_path / CHECKPOINT).is_file()
    assert_actors_stopped(trainer)
    assert not [t for t in threading.enumerate() if t.name.startswith("pydqn-") and t.is_alive()]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"prioritized": True},  # the learner thread also updates priorities
        {"learning_starts": 32, "chunk_steps": 20},  # the first chunk alone passes learning_starts
    ],
)
def test_the_rate_limiter_holds_the_replay_ratio_at_every_logged_step(tmp_path, changes):
    trainer, result = run_stamped(tmp_path, total_steps=3_000, log_interval=100, **changes)
    config = trainer.config
    centre = config.samples_per_insert * config.learning_starts
    rows = read_csv(tmp_path / "metrics.csv")
    assert len(rows) >= 20
    for row in rows:
        # Transitions stored and updates made (each samples one batch; the row reads the two
        # counts one after the other, so an update may be under way: one batch of slack).
        stored, updates = int(row["inserted"]), int(row["updates"])
        assert updates == 0 or stored >= config.learning_starts, row
        if stored >= config.learning_starts:
            diff = config.samples_per_insert * stored - updates * config.batch_size
            assert abs(diff - centre) <= config.error_buffer + config.batch_size, row
    # At the end the learner has made the updates the ratio asks for (to one), or, had it run
    # ahead, at most the error buffer's worth more.
    owed = config.samples_per_insert * (trainer.ingested - config.learning_starts) / config.batch_size
    assert owed - 1 < result.updates <= owed + config.error_buffer / config.batch_size


def test_a_cluster_too_small_for_the_actors_is_refused_before_anything_is_written(tmp_path):
    config = build_config(overrides={**STAMPED, "actors": 3})
    with pytest.raises(SettingError, match="actors: 3 actors need a CPU each, and the Ray cluster has 2"):
        make_trainer(config, tmp_path / "run", env_factory=StampedEnvs)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_the_local_trainers_refuse_actors(tmp_path):
    with pytest.raises(SettingError, match=r"actors: distributed training runs through pydqn\.distributed"):
        train_locally(build_config(overrides=STAMPED), tmp_path)


def test_without_ray_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "pydqn\[ray\]"'):
        RayCluster(build_config(overrides=STAMPED))


def test_resume_continues_an_apex_run_with_its_buffer(tmp_path):
    config = build_config(overrides={**STAMPED, "save_buffer": True, "total_steps": 600})
    first = train(config, tmp_path, env_factory=StampedEnvs)
    resumed = build_config(overrides={**STAMPED, "save_buffer": True, "total_steps": 1_200})
    trainer = make_trainer(resumed, tmp_path, resume=True, env_factory=StampedEnvs)
    try:
        assert trainer.step == first.steps and len(trainer.buffer) > 0
        result = trainer.run()
        for t in stored_transitions(trainer):  # the saved episodes end where the run stopped
            check_transition(t, config.n_step, config.learner.gamma, cut_allowed=True)
    finally:
        trainer.close()
    assert result.steps >= 1_200 and result.updates > first.updates


@pytest.mark.slow
def test_cartpole_with_two_actors_learns_clearly_above_random(tmp_path):
    """The async trainer's CI bar (random play scores ~22)."""
    config = build_config(
        "cartpole",
        {
            "actors": 2,
            "envs_per_actor": 1,
            "total_steps": 25_000,
            "device": "cpu",
            "seed": 3,
            "actor_exploration": "schedule",
            "tensorboard": False,
        },
    )
    train(config, tmp_path)
    assert evaluate(tmp_path, episodes=20).mean() > 100
    assert np.isfinite(float(read_csv(tmp_path / "metrics.csv")[-1]["ingested_per_s"]))
