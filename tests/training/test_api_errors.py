"""The Python API refuses bad arguments as the CLI does: an exception naming the argument or setting,
raised before anything is written (no run folder appears, an existing one is unchanged)."""

import dataclasses
import re

import pytest
import torch
from cli_helpers import copy_run, snapshot

from pydqn.agent.learner import DQNLearner, LearnerConfig
from pydqn.runs import CheckpointError, RunDirError
from pydqn.settings import SettingError
from pydqn.training import TrainConfig, build_config, evaluate, train

NAN = float("nan")


def cartpole(**overrides):
    return build_config(
        "cartpole", {"device": "cpu", "total_steps": 600, "learning_starts": 300, **overrides}
    )


NEW_RUN_CASES = [
    (lambda: TrainConfig(total_steps=0), SettingError, "total_steps: expected a value in [1, 10^12], got 0"),
    (lambda: TrainConfig(total_steps=96.7), SettingError, "total_steps: expected an integer, got 96.7"),  # type: ignore[arg-type]
    (
        lambda: TrainConfig(learner=LearnerConfig(gamma=NAN)),
        SettingError,
        "learner.gamma: expected a value in [0, 1]",
    ),
    (lambda: TrainConfig(learner=LearnerConfig(learning_rate=0.0)), SettingError, "learner.learning_rate"),
    (lambda: TrainConfig(hidden_sizes=(64, -1)), SettingError, "hidden_sizes: expected items in [1, 65,536]"),
    (
        lambda: dataclasses.replace(cartpole(), env_id="Nope-v0"),
        ValueError,
        "env_id: expected a registered gymnasium id",
    ),
    (
        lambda: dataclasses.replace(cartpole(), device="gpu"),
        ValueError,
        "device: expected 'cpu' or a torch.device",
    ),
]
if not torch.cuda.is_available():
    NEW_RUN_CASES += [
        (lambda: dataclasses.replace(cartpole(), device="cuda"), ValueError, "device: 'cuda' was asked for"),
        (
            lambda: dataclasses.replace(cartpole(), learner=LearnerConfig(cuda_graph=True)),
            ValueError,
            "cuda_graph: capturing the update needs a CUDA device",
        ),
    ]


@pytest.mark.parametrize("make_config,error,message", NEW_RUN_CASES)
def test_train_refuses_a_bad_config_before_writing_anything(tmp_path, make_config, error, message):
    with pytest.raises(error) as info:
        train(make_config(), tmp_path / "run")
    assert message in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_train_refuses_what_cannot_be_done_with_a_folder(small_run, tmp_path):
    with pytest.raises(ValueError, match="config: expected a TrainConfig when not resuming"):
        train(None, tmp_path / "a")
    with pytest.raises(CheckpointError, match=r"b/checkpoint\.pt does not exist"):
        train(None, tmp_path / "b", resume=True)
    with pytest.raises(ValueError, match="run_dir: expected the run directory to resume"):
        train(cartpole(), resume=True)
    assert list(tmp_path.iterdir()) == []
    run = copy_run(small_run, tmp_path / "run")
    before = snapshot(run)
    with pytest.raises(RunDirError, match="holds a run already"):
        train(cartpole(), run)
    with pytest.raises(SettingError, match=r"learner\.gamma: a resumed run keeps"):
        config = build_config("cartpole", {"total_steps": 2_000, "device": "cpu", "learner": {"gamma": 0.5}})
        train(config, run, resume=True)
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"epsilon": 2.0}, SettingError, "epsilon: expected a value in [0, 1], got 2.0"),
        ({"epsilon": NAN}, SettingError, "epsilon: expected a value in [0, 1], got nan"),
        ({"episodes": 0}, SettingError, "episodes: expected a value in [1, 100,000], got 0"),
        ({"episodes": 2.5}, SettingError, "episodes: expected an integer, got 2.5"),
        ({"seed": -1}, SettingError, "seed: expected a value in [0, 1,073,741,824], got -1"),
        ({"device": "gpu"}, ValueError, "device: expected 'cpu' or a torch.device"),
    ],
)
def test_evaluate_refuses_bad_arguments(small_run, kwargs, error, message):
    with pytest.raises(error) as info:
        evaluate(small_run, **kwargs)
    assert message in str(info.value)


def test_evaluate_names_a_missing_checkpoint(tmp_path):
    with pytest.raises(
        CheckpointError, match=re.escape(f"checkpoint: {tmp_path / 'checkpoint.pt'} does not exist")
    ):
        evaluate(tmp_path)


@pytest.mark.parametrize(
    "config,message",
    [
        (LearnerConfig(tau=0.0), "tau: expected a value in (0, 1], got 0.0"),
        (LearnerConfig(target_update_interval=0), "target_update_interval: expected a value in [1, 10^12]"),
        (LearnerConfig(max_grad_norm=-1.0), "max_grad_norm: expected a value in (0, 1,000,000]"),
        (LearnerConfig(adam_eps=NAN), "adam_eps: expected a value in (0, 1], got nan"),
    ],
)
def test_the_learner_refuses_a_bad_config(config, message):
    with pytest.raises(SettingError) as info:
        DQNLearner(torch.nn.Linear(4, 2), config)
    assert message in str(info.value)
