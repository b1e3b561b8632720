"""A run's checkpoint read back for training on or playing: its state and the configuration saved in
it, read once and checked whole before anything uses them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pydqn.agent.learner import DQNLearner
from pydqn.runs import CheckpointError, RunDirError, RunLayout, load_checkpoint
from pydqn.runs.checkpoint import file_stamp
from pydqn.settings import MAX_COUNT
from pydqn.training.config import TrainConfig, parse_config

# What a training checkpoint (checkpoint.pt, best.pt) holds, and of which type.
CHECKPOINT_FIELDS: dict[str, type] = {
    "config": str,
    "learner": dict,
    "step": int,
    "episodes": int,
    "best_eval": float,
    "rng": dict,
    "torch_rng": torch.Tensor,
}


KIND_NAMES = {
    str: "a string",
    dict: "a table",
    int: "an integer",
    float: "a number",
    torch.Tensor: "a tensor",
}


@dataclass(frozen=True)
class ResumePoint:
    """A run's checkpoint (``state``, from file ``path``) and the configuration it was trained with."""

    config: TrainConfig
    state: dict[str, Any]
    path: Path
    stamp: tuple[int, int, int]  # the file's, when read (see pydqn.runs.checkpoint.file_stamp)

    def check_unchanged(self) -> None:
        """Raise `RunDirError` if the checkpoint file was replaced since it was read (by another
        process that trained the run in between)."""
        if not self.path.is_file() or file_stamp(self.path) != self.stamp:
            raise RunDirError(
                f"run_dir: {self.path} changed while this resume was starting (another process "
                "trained the run meanwhile); resume again to start from its new checkpoint"
            )


def read_resume_point(run_dir: Path) -> ResumePoint:
    """The last checkpoint of the run in ``run_dir`` (see `read_run_checkpoint`)."""
    return read_run_checkpoint(RunLayout(run_dir).checkpoint)


def read_run_checkpoint(path: Path) -> ResumePoint:
    """The training checkpoint at ``path``, checked whole: raises `CheckpointError` naming the file
    and the field for a missing or damaged file, a missing field, a value of the wrong type or
    range, a configuration that is not valid, or random-generator states that cannot be restored.
    (The learner's state is checked against the network when it is loaded: `load_learner`.)"""
    stamp = file_stamp(path) if Path(path).is_file() else (0, 0, 0)
    state = load_checkpoint(path)

    def refuse(field: str, problem: str) -> CheckpointError:
        return CheckpointError(f"checkpoint: {path} is not a checkpoint of a pydqn run: {field}: {problem}")

    for field, kind in CHECKPOINT_FIELDS.items():
        if field not in state:
            raise refuse(field, "missing")
        value = state[field]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = state[field] = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise refuse(field, f"expected {KIND_NAMES[kind]}, got {type(value).__name__}")
    for field in ("step", "episodes"):
        if not 0 <= state[field] <= MAX_COUNT:
            raise refuse(field, f"expected an integer in [0, {MAX_COUNT:,}], got {state[field]}")
    if math.isnan(state["best_eval"]) or state["best_eval"] == math.inf:
        raise refuse("best_eval", f"expected a mean return or -inf (none yet), got {state['best_eval']}")
    try:
        config = parse_config(state["config"])
    except ValueError as error:  # tomllib's errors are ValueErrors too
        raise refuse("config", str(error)) from None
    try:
        np.random.default_rng().bit_generator.state = state["rng"]
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise refuse("rng", f"not a numpy PCG64 state ({error})") from None
    expected = torch.get_rng_state()
    torch_rng = state["torch_rng"]
    if torch_rng.dtype != expected.dtype or torch_rng.shape != expected.shape:
        raise refuse(
            "torch_rng",
            f"expected a {expected.dtype} tensor of shape {tuple(expected.shape)}, got "
            f"{torch_rng.dtype} {tuple(torch_rng.shape)}",
        )
    return ResumePoint(config, state, Path(path), stamp)


def load_learner(learner: DQNLearner, point: ResumePoint) -> None:
    """Load the checkpoint's learner state into ``learner``; raises `CheckpointError` naming the
    file when it does not fit (another network's weights, a damaged optimizer state)."""
    try:
        learner.load_state_dict(point.state["learner"])
    except ValueError as error:
        raise CheckpointError(
            f"checkpoint: {point.path} is not a checkpoint of this run's network: {error}"
        ) from None
