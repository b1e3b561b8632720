"""Where a resumed run continues from: its last checkpoint and the configuration saved in it,
read and parsed once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydqn.runs import RunLayout, load_checkpoint
from pydqn.training.config import TrainConfig, parse_config


@dataclass(frozen=True)
class ResumePoint:
    """A run directory's last checkpoint (``state``) and the configuration it was trained with."""

    config: TrainConfig
    state: dict[str, Any]


def read_resume_point(run_dir: Path) -> ResumePoint:
    """The checkpoint of the run in ``run_dir``; raises `CheckpointError` if it has none."""
    state = load_checkpoint(RunLayout(run_dir).checkpoint)
    return ResumePoint(parse_config(state["config"]), state)
