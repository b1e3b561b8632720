"""The layout of a run directory: every file a training run writes, named in this one place.

RUN_DIR/
  config.toml         the resolved settings
  checkpoint.pt       the last checkpoint (networks, optimizer, RNG states, counters, config)
  replay.pt           the replay buffer of the last checkpoint (with save_buffer on)
  best.pt             the best policy of the periodic evaluations (with eval_interval > 0)
  episodes.csv        one row per finished training episode
  metrics.csv         one row per log_interval: loss, mean Q, epsilon, rates
  evals.csv           one row per periodic evaluation
  tensorboard/        the same scalars, when tensorboard is installed
  learning_curve.png  `pydqn plot`'s default output
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUNS_ROOT = Path("runs")  # where runs go when no run directory is given
CONFIG = "config.toml"
CHECKPOINT = "checkpoint.pt"
REPLAY = "replay.pt"
BEST = "best.pt"
EPISODES = "episodes.csv"
METRICS = "metrics.csv"
EVALS = "evals.csv"
TENSORBOARD = "tensorboard"
LEARNING_CURVE = "learning_curve.png"
# What a run (and its reports) write: a folder holding any of them holds a run.
RUN_FILES = (CONFIG, CHECKPOINT, REPLAY, BEST, EPISODES, METRICS, EVALS, TENSORBOARD, LEARNING_CURVE)


@dataclass(frozen=True)
class RunLayout:
    """The paths of the files in run directory ``root``."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT

    @property
    def replay(self) -> Path:
        return self.root / REPLAY

    @property
    def best(self) -> Path:
        return self.root / BEST

    @property
    def episodes(self) -> Path:
        return self.root / EPISODES

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def evals(self) -> Path:
        return self.root / EVALS

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD

    @property
    def learning_curve(self) -> Path:
        return self.root / LEARNING_CURVE

    def run_files(self) -> list[str]:
        """The names of the run files the folder holds (empty for a new or missing folder)."""
        return [name for name in RUN_FILES if (self.root / name).exists() or (self.root / name).is_symlink()]


def default_run_dir(env_id: str, seed: int) -> Path:
    """``runs/<env>-<seed>`` (e.g. ``runs/ALE-Pong-v5-1``), or when that holds a run already the
    first of ``runs/<env>-<seed>-2``, ``-3``, ... that does not: a new run never lands in an old
    one's folder."""
    base = RUNS_ROOT / f"{env_id.replace('/', '-')}-{seed}"
    candidate, number = base, 1
    while RunLayout(candidate).run_files():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate
