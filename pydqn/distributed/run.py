"""Training with or without actors: `train` and `make_trainer` of `pydqn.training.run`, with the
Ape-X trainer for ``config.actors`` (the one place above both that picks between them)."""

from __future__ import annotations

import functools
from pathlib import Path

from pydqn.distributed.actor import EnvFactory
from pydqn.distributed.apex_trainer import ApexTrainer
from pydqn.training import run as local
from pydqn.training.config import TrainConfig
from pydqn.training.resume import ResumePoint
from pydqn.training.trainer import Trainer, TrainResult


def make_trainer(
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    *,
    resume: bool | ResumePoint = False,
    overwrite: bool = False,
    env_factory: EnvFactory | None = None,
) -> Trainer:
    """`pydqn.training.run.make_trainer`, building `ApexTrainer` (with ``env_factory``, see there)
    when the configuration has ``actors``."""

    def choose(chosen: TrainConfig) -> local.TrainerFactory:
        if chosen.actors:
            return functools.partial(ApexTrainer, env_factory=env_factory)
        return local.trainer_class(chosen)

    return local.make_trainer(config, run_dir, resume=resume, overwrite=overwrite, choose=choose)


def train(
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    *,
    resume: bool | ResumePoint = False,
    overwrite: bool = False,
    env_factory: EnvFactory | None = None,
) -> TrainResult:
    """`pydqn.training.train`, on Ray actors when ``config.actors`` > 0 (`ApexTrainer`); raises
    ImportError naming the ``ray`` extra when Ray is not installed, and what `pydqn.training.train`
    raises otherwise."""
    trainer = make_trainer(config, run_dir, resume=resume, overwrite=overwrite, env_factory=env_factory)
    return local.run_to_end(trainer)
