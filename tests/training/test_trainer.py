"""The training loop end to end on CartPole: files, checkpoints, resume, evaluation, CLI errors."""

import csv
import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from cli_helpers import run_pydqn

from pydqn import ReplayBuffer
from pydqn.cli import main
from pydqn.runs.checkpoint import CheckpointError, load_checkpoint
from pydqn.runs.layout import BEST, CHECKPOINT
from pydqn.training import Trainer, train
from pydqn.training.config import build_config
from pydqn.training.evaluate import checkpoint_to_evaluate, evaluate
from pydqn.training.run import trainer_class


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


SMALL = {
    "total_steps": 2_000,
    "learning_starts": 500,
    "checkpoint_interval": 1_000,
    "log_interval": 500,
    "device": "cpu",
}


def test_cli_train_writes_config_logs_and_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--preset",
                "cartpole",
                "--total-steps",
                "2000",
                "--learning-starts",
                "500",
                "--log-interval",
                "500",
                "--no-double",
                "--seed",
                "0",
                "--eval-interval",
                "0",
                "--run-dir",
                str(run),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "trained 2,000 env steps" in out and "best periodic evaluation" not in out
    assert 'env_id = "CartPole-v1"' in (run / "config.toml").read_text()
    assert "double = false" in (run / "config.toml").read_text()
    assert "seed = 0" in (run / "config.toml").read_text()
    assert read_csv(run / "evals.csv") == []  # --eval-interval 0: no periodic evaluation
    episodes = read_csv(run / "episodes.csv")
    assert len(episodes) > 10 and all(float(e["return"]) == float(e["length"]) for e in episodes)
    metrics = read_csv(run / "metrics.csv")
    assert [int(m["step"]) for m in metrics] == [500, 1000, 1500, 2000]
    preset = build_config("cartpole")
    assert float(metrics[-1]["loss"]) >= 0
    assert int(metrics[-1]["updates"]) == (2000 - 500) // preset.train_frequency
    assert load_checkpoint(run / CHECKPOINT)["step"] == 2000


def test_cli_train_points_to_the_best_policy(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--preset",
                "cartpole",
                "--total-steps",
                "1000",
                "--learning-starts",
                "500",
                "--eval-interval",
                "500",
                "--eval-episodes",
                "2",
                "--run-dir",
                str(run),
            ]
        )
        == 0
    )
    assert f"kept as {run / 'best.pt'}; `pydqn evaluate {run}` plays it" in capsys.readouterr().out
    assert (run / "best.pt").is_file()


def test_resume_continues_from_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    config = build_config("cartpole", {**SMALL, "total_steps": 1_000})
    train(config, run)
    first = load_checkpoint(run / CHECKPOINT)
    result = train(dataclasses.replace(config, total_steps=2_000), run, resume=True)
    assert result.steps == 2000 and result.updates > first["learner"]["updates"]
    steps = [int(row["step"]) for row in read_csv(run / "episodes.csv")]
    assert steps == sorted(steps) and steps[0] <= 1000 < steps[-1]  # one log, appended


def test_evaluate_reports_raw_returns(tmp_path):
    run = tmp_path / "run"
    train(build_config("cartpole", SMALL), run)
    returns = evaluate(run, episodes=5)
    assert returns.shape == (5,) and np.all(returns >= 8)  # CartPole lasts at least 8 steps


def test_periodic_evaluation_keeps_the_best_policy(tmp_path):
    run = tmp_path / "run"
    train(build_config("cartpole", {**SMALL, "eval_interval": 500, "eval_episodes": 3}), run)
    evals = read_csv(run / "evals.csv")
    assert [int(e["step"]) for e in evals] == [500, 1000, 1500, 2000]
    means = [float(e["mean_return"]) for e in evals]
    best_rows = [i for i, e in enumerate(evals) if e["best"] == "1"]
    assert best_rows[0] == 0 and means[best_rows[-1]] == max(means)
    best = load_checkpoint(run / BEST)
    assert best["step"] == int(evals[best_rows[-1]]["step"]) and best["best_eval"] == max(means)
    assert checkpoint_to_evaluate(run) == run / BEST


def test_plot_draws_the_learning_curve(tmp_path, capsys):
    run = tmp_path / "run"
    train(build_config("cartpole", {**SMALL, "eval_interval": 500, "eval_episodes": 2}), run)
    assert main(["plot", str(run)]) == 0
    png = run / "learning_curve.png"
    assert capsys.readouterr().out.strip() == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_running_mean_by_hand():
    from pydqn.report.plot import running_mean

    assert running_mean(np.array([1.0, 3.0, 5.0, 7.0]), window=2).tolist() == [1.0, 2.0, 4.0, 6.0]


def test_plot_without_episodes_is_a_usage_error(tmp_path):
    (tmp_path / "episodes.csv").write_text("step,return,length,wall_time\n")
    result = run_pydqn("plot", str(tmp_path))
    assert result.returncode == 2 and "holds no finished episode yet" in result.stderr


def test_truncated_or_foreign_checkpoints_get_clear_errors(tmp_path):
    run = tmp_path / "run"
    train(build_config("cartpole", SMALL), run)
    data = (run / CHECKPOINT).read_bytes()
    (run / CHECKPOINT).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is truncated or not a pydqn checkpoint"):
        load_checkpoint(run / CHECKPOINT)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="is not a pydqn checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    result = run_pydqn("evaluate", str(run))
    assert result.returncode == 2 and "is truncated or not a pydqn checkpoint" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_cartpole_learns_clearly_above_random(tmp_path):
    """A small budget must already beat the random policy (~22) by far: a broken learner cannot."""
    run = tmp_path / "run"
    train(build_config("cartpole", {"total_steps": 25_000, "device": "cpu", "seed": 3}), run)
    assert evaluate(run, episodes=20).mean() > 100


def assert_same_learner(a, b):
    for x, y in zip(
        [*a.online.parameters(), *a.target.parameters()],
        [*b.online.parameters(), *b.target.parameters()],
        strict=True,
    ):
        assert torch.equal(x, y)


def test_resume_restores_the_agent_buffer_and_generators_exactly(tmp_path):
    """A resumed run acts, samples and updates exactly as the checkpointed one would have gone on."""
    config = build_config("cartpole", {**SMALL, "total_steps": 1_200, "save_buffer": True})
    first = Trainer(config, tmp_path / "run")
    first.run()
    first.close()  # gives the run folder back (its learner, buffer and generators stay usable)
    resumed = Trainer(dataclasses.replace(config, total_steps=2_400), tmp_path / "run", resume=True)
    try:
        assert (resumed.step, resumed.episodes) == (first.step, first.episodes)
        assert resumed.updates_from == resumed.step  # the buffer came back: no refill
        assert_same_learner(first.learner, resumed.learner)
        assert len(resumed.buffer) == len(first.buffer) > 1_000  # autoreset rows are not stored
        probe = np.random.default_rng(7).standard_normal((64, 4)).astype(np.float32)
        first.epsilon = resumed.epsilon = lambda step: 0.5  # exploration draws from the rng too
        assert np.array_equal(first.act(probe), resumed.act(probe))
        for trainer in (first, resumed):
            trainer.learner.update(trainer.buffer.sample(64))
        assert_same_learner(first.learner, resumed.learner)
    finally:
        resumed.close()


def test_resume_with_a_saved_buffer_updates_at_once(tmp_path):
    run = tmp_path / "run"
    config = build_config("cartpole", {**SMALL, "total_steps": 1_000, "save_buffer": True})
    train(config, run)
    first = load_checkpoint(run / CHECKPOINT)
    result = train(dataclasses.replace(config, total_steps=1_400), run, resume=True)
    updates = result.updates - first["learner"]["updates"]
    assert updates == 400 // config.train_frequency  # without the buffer: (400 - 500) < 0 → none


def test_tensorboard_gets_the_logged_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(build_config("cartpole", {**SMALL, "eval_interval": 1_000, "eval_episodes": 2}), tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"episode/return", "train/loss", "train/fps", "eval/mean_return"} <= set(tags)
    losses = read_csv(tmp_path / "metrics.csv")
    logged = events.Scalars("train/loss")
    assert [e.step for e in logged] == [int(row["step"]) for row in losses]
    assert [e.value for e in logged] == pytest.approx([float(row["loss"]) for row in losses], nan_ok=True)


@pytest.mark.parametrize("trainer", [[], ["--async"]])
def test_ctrl_c_writes_a_final_checkpoint_and_exits_cleanly(tmp_path, trainer):
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pydqn",
            "train",
            "--preset",
            "cartpole",
            "--total-steps",
            "1000000",
            "--learning-starts",
            "500",
            "--eval-interval",
            "0",
            "--run-dir",
            str(run),
            *trainer,
        ],
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (run / "episodes.csv").exists() or len(read_csv(run / "episodes.csv")) < 20:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "(interrupted; checkpoint written)" in out and "Traceback" not in err
    step = load_checkpoint(run / CHECKPOINT)["step"]
    assert 0 < step < 1_000_000 and f"trained {step:,} env steps" in out


def test_prioritized_learning_feeds_abs_td_errors_back_as_priorities(tmp_path):
    from pydqn.training.phase_clock import PhaseClock

    config = build_config(
        "cartpole",
        {**SMALL, "total_steps": 600, "eval_interval": 0, "prioritized": True, "priority_epsilon": 0.01},
    )
    trainer = Trainer(config, tmp_path / "run")
    try:
        trainer.run()
        seen: dict[str, Any] = {}
        buffer: Any = trainer.buffer  # its methods are wrapped to record the calls
        sample, update = buffer.sample, buffer.update_priorities
        buffer.sample = lambda size, beta: seen.setdefault(
            "batch", sample(size, beta=seen.setdefault("beta", beta))
        )
        buffer.update_priorities = lambda ids, p: seen.setdefault("update", (ids, p)) and update(ids, p)
        trainer.step = 150  # beta anneals linearly from 0.4 at step 0 to 1 at total_steps
        trainer.learn(PhaseClock())
        assert seen["beta"] == pytest.approx(0.4 + 0.6 * 150 / 600)
        ids, priorities = seen["update"]
        assert torch.equal(ids, seen["batch"].transition_ids)
        td = trainer.metrics["td_error"].double()
        assert torch.allclose(priorities, td.abs() + 0.01)
        # The buffer holds them (as p^alpha); where an id repeats in the batch, its last one.
        state = buffer.state_dict()
        oldest = state["added"] - len(state["priorities"])
        last = {int(i): row for row, i in enumerate(ids)}
        leaves = state["priorities"][[i - oldest for i in last]]
        expected = priorities[list(last.values())] ** config.priority_alpha
        assert torch.allclose(leaves, expected)
    finally:
        trainer.close()


@pytest.mark.parametrize("replay", ["cpp", "python"])
def test_rainbow_lite_stacks_on_the_cartpole_preset_and_runs(tmp_path, capsys, replay):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--preset",
                "cartpole",
                "rainbow-lite",
                "--total-steps",
                "800",
                "--learning-starts",
                "500",
                "--eval-interval",
                "0",
                "--replay",
                replay,
                "--run-dir",
                str(run),
            ]
        )
        == 0
    )
    saved = (run / "config.toml").read_text()
    for line in (
        'env_id = "CartPole-v1"',
        "dueling = true",
        "n_step = 3",
        "prioritized = true",
        "priority_alpha = 0.5",
        "double = true",
    ):
        assert line in saved
    assert "trained 800 env steps" in capsys.readouterr().out


@pytest.mark.cuda
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_both_trainers_train_with_a_captured_cuda_graph(tmp_path, asynchronous):
    config = build_config(
        "cartpole",
        {
            **SMALL,
            "total_steps": 1_200,
            "device": "cuda",
            "asynchronous": asynchronous,
            "learner": {"cuda_graph": True},
        },
    )
    trainer = trainer_class(config)(config, tmp_path / "run")
    try:
        result = trainer.run()
        assert trainer.learner._captured is not None and result.timed_updates > 0  # no eager fallback
        owed = (config.total_steps - config.learning_starts) // config.train_frequency
        assert trainer.learner.updates == owed
        assert all(torch.isfinite(p).all() for p in trainer.learner.online.parameters())
    finally:
        trainer.close()


@pytest.mark.cuda
@pytest.mark.parametrize("prioritized", [False, True])
def test_training_on_a_gpu_keeps_the_replay_buffer_there(tmp_path, prioritized):
    config = build_config(
        "cartpole",
        {**SMALL, "total_steps": 1_200, "device": "cuda", "save_buffer": True, "prioritized": prioritized},
    )
    trainer = Trainer(config, tmp_path / "run")
    try:
        assert isinstance(trainer.buffer, ReplayBuffer)
        assert (trainer.buffer.device.type, trainer.buffer.sampler) == ("cuda", "kernel")
        trainer.run()
        assert trainer.learner.updates > 0 and trainer.buffer.sample(8).obs.is_cuda
        assert trainer.learner._to_device._staging is None  # no batch went through host memory
    finally:
        trainer.close()
    resumed = Trainer(dataclasses.replace(config, total_steps=2_400), tmp_path / "run", resume=True)
    try:
        assert len(resumed.buffer) == len(trainer.buffer) and resumed.updates_from == resumed.step
    finally:
        resumed.close()
