"""Running a training run: the trainer a configuration asks for, run to its end and closed.

The one place that chooses between the trainers, so neither imports the other's caller.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydqn.runs import default_run_dir
from pydqn.settings import SettingError
from pydqn.training.async_trainer import AsyncTrainer
from pydqn.training.config import TrainConfig
from pydqn.training.resume import ResumePoint, read_resume_point
from pydqn.training.trainer import Trainer, TrainResult

# Builds the trainer of a configuration: (config, run_dir, resume=..., overwrite=...) -> Trainer.
TrainerFactory = Callable[..., Trainer]


def trainer_class(config: TrainConfig) -> type[Trainer]:
    """`AsyncTrainer` for ``config.asynchronous``, else `Trainer`; ``actors`` is refused here: the
    Ape-X trainer is a layer above (`pydqn.distributed.train`)."""
    if config.actors:
        raise SettingError(
            "actors: distributed training runs through pydqn.distributed.train (or pydqn train --actors N)"
        )
    return AsyncTrainer if config.asynchronous else Trainer


def train(
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    *,
    resume: bool | ResumePoint = False,
    overwrite: bool = False,
) -> TrainResult:
    """Train per ``config`` (see `build_config`), recording into ``run_dir``, and return the
    result (`TrainResult`, whose ``run_dir`` says where the run went).

    A new run's ``run_dir`` defaults to a fresh folder under ``runs/`` (`default_run_dir`); an
    explicit one must hold no run, unless ``overwrite`` deletes the old run's files first.
    ``resume=True`` continues the run in ``run_dir`` from its last checkpoint, with the
    configuration saved there, or with ``config`` when given: it may change the resumable settings
    only (``total_steps`` to extend the run, intervals, device, threads; see
    `pydqn.training.config.RESUMABLE`). A caller that has read the checkpoint already passes the
    `ResumePoint` as ``resume``. Runs `AsyncTrainer` for ``config.asynchronous``, else `Trainer`.

    Raises `SettingError` for a setting of the wrong type or range, `RunDirError` for a run
    directory that cannot be used so, `CheckpointError` for a damaged checkpoint, `RunFileError`
    for a file that cannot be written; before training starts, nothing is then written.
    """
    trainer = make_trainer(config, run_dir, resume=resume, overwrite=overwrite)
    return run_to_end(trainer)


def run_to_end(trainer: Trainer) -> TrainResult:
    """Run ``trainer`` and close it, whatever happens."""
    try:
        return trainer.run()
    finally:
        trainer.close()


def make_trainer(
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    *,
    resume: bool | ResumePoint = False,
    overwrite: bool = False,
    choose: Callable[[TrainConfig], TrainerFactory] = trainer_class,
) -> Trainer:
    """The trainer `train` runs, built and checked but not started (its caller runs and closes it);
    ``choose`` picks its class from the configuration."""
    if resume:
        if run_dir is None:
            raise ValueError("run_dir: expected the run directory to resume")
        if overwrite:
            raise ValueError("overwrite: a resumed run keeps its files; overwrite starts a new run")
        point = read_resume_point(Path(run_dir)) if resume is True else resume
        return choose(config or point.config)(config, Path(run_dir), resume=point)
    if config is None:
        raise ValueError("config: expected a TrainConfig when not resuming")
    config = config.validate()
    folder = Path(run_dir) if run_dir is not None else default_run_dir(config.env_id, config.seed)
    return choose(config)(config, folder, overwrite=overwrite)
