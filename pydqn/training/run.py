"""Running a training run: the trainer a configuration asks for, run to its end and closed.

The one place that chooses between the trainers, so neither imports the other's caller.
"""

from __future__ import annotations

from pathlib import Path

from pydqn.training.async_trainer import AsyncTrainer
from pydqn.training.config import TrainConfig
from pydqn.training.resume import ResumePoint, read_resume_point
from pydqn.training.trainer import Trainer, TrainResult


def trainer_class(config: TrainConfig) -> type[Trainer]:
    """`AsyncTrainer` for ``config.asynchronous``, else `Trainer`."""
    return AsyncTrainer if config.asynchronous else Trainer


def train(config: TrainConfig | None, run_dir: Path, resume: bool | ResumePoint = False) -> TrainResult:
    """Train per ``config``, recording into ``run_dir``; ``resume=True`` continues the run in
    ``run_dir`` from its last checkpoint, with the configuration saved there (``config`` unused;
    a caller that has read it already passes the `ResumePoint`). See `Trainer`, and
    `AsyncTrainer` for ``config.asynchronous``."""
    if resume:
        point = read_resume_point(Path(run_dir)) if resume is True else resume
        trainer = trainer_class(point.config)(None, run_dir, resume=point)
    elif config is None:
        raise ValueError("config: expected a TrainConfig when not resuming")
    else:
        trainer = trainer_class(config)(config, run_dir)
    try:
        return trainer.run()
    finally:
        trainer.close()
