"""The asynchronous trainer: replay ratio, faults in either thread, resume, learning (CartPole)."""

import csv
import dataclasses
import threading
import traceback

import pytest

from pydqn.runs.checkpoint import load_checkpoint
from pydqn.runs.layout import CHECKPOINT
from pydqn.training import train
from pydqn.training.async_trainer import AsyncTrainer
from pydqn.training.config import build_config
from pydqn.training.evaluate import evaluate

SMALL = {
    "total_steps": 3_000,
    "learning_starts": 500,
    "log_interval": 100,
    "device": "cpu",
    "asynchronous": True,
    "eval_interval": 0,
}


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def pydqn_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pydqn-") and t.is_alive()]


@pytest.mark.parametrize(
    "num_envs,train_frequency,presets",
    [
        (1, 2, ["cartpole"]),
        (4, 1, ["cartpole"]),
        (1, 2, ["cartpole", "rainbow-lite"]),  # the learner thread also updates priorities
    ],
)
def test_replay_ratio_holds_within_the_window_all_along(tmp_path, num_envs, train_frequency, presets):
    config = build_config(presets, {**SMALL, "num_envs": num_envs, "train_frequency": train_frequency})
    result = train(config, tmp_path)
    owed = (config.total_steps - config.learning_starts) / train_frequency
    assert result.updates == int(owed)  # the learner catches up at the end, never overshoots
    assert abs(result.updates / owed - 1) < 0.05
    lead = config.async_window + num_envs / train_frequency  # the actor stops past the window
    for row in read_csv(tmp_path / "metrics.csv"):
        owed_then = max(0, int(row["step"]) - config.learning_starts) / train_frequency
        assert owed_then - lead <= int(row["updates"]) <= owed_then, row
    assert not pydqn_threads()


def run_with_fault(tmp_path, inject):
    trainer = AsyncTrainer(build_config("cartpole", SMALL), tmp_path)
    inject(trainer)
    try:
        with pytest.raises(RuntimeError, match="injected fault") as info:
            trainer.run()
    finally:
        trainer.close()
    assert not pydqn_threads()  # both threads stopped
    assert load_checkpoint(tmp_path / CHECKPOINT)["step"] == trainer.step  # and a checkpoint
    return "".join(traceback.format_tb(info.value.__traceback__))


def test_a_fault_in_the_env_stops_both_threads_with_the_original_exception(tmp_path):
    def inject(trainer):
        step, calls = trainer.env.step, [0]

        def failing_step(actions):
            calls[0] += 1
            if calls[0] == 700:
                raise RuntimeError("injected fault in env.step")
            return step(actions)

        trainer.env.step = failing_step

    assert "failing_step" in run_with_fault(tmp_path, inject)  # the thread's own traceback


def test_a_fault_in_the_learner_stops_both_threads_with_the_original_exception(tmp_path):
    def inject(trainer):
        update = trainer.learner.update

        def failing_update(batch):
            if trainer.learner.updates == 50:
                raise RuntimeError("injected fault in the update")
            return update(batch)

        trainer.learner.update = failing_update

    assert "failing_update" in run_with_fault(tmp_path, inject)


def test_resume_continues_an_async_run(tmp_path):
    config = build_config("cartpole", {**SMALL, "total_steps": 1_000, "save_buffer": True})
    train(config, tmp_path)
    first = load_checkpoint(tmp_path / CHECKPOINT)
    assert first["learner"]["updates"] == (1_000 - 500) // 2
    result = train(dataclasses.replace(config, total_steps=1_600), tmp_path, resume=True)
    assert result.steps == 1_600 and result.updates == first["learner"]["updates"] + 600 // 2


@pytest.mark.slow
def test_async_cartpole_learns_clearly_above_random(tmp_path):
    """The synchronous trainer's CI bar: a small budget beats random play (~22) by far."""
    train(
        build_config("cartpole", {"total_steps": 25_000, "device": "cpu", "seed": 3, "asynchronous": True}),
        tmp_path,
    )
    assert evaluate(tmp_path, episodes=20).mean() > 100
