"""Training: the configuration (dataclasses, presets, TOML), building a run's parts, the sync and
async trainers, evaluation, and `train`, which picks the trainer and runs it.

The top library layer: it composes envs, the agent, a replay buffer and a run directory.
"""

from pydqn.training.async_trainer import AsyncTrainer
from pydqn.training.config import PRESETS, TrainConfig, build_config, parse_config, to_toml
from pydqn.training.evaluate import evaluate, play_episodes
from pydqn.training.run import train
from pydqn.training.trainer import Trainer, TrainResult

__all__ = [
    "PRESETS",
    "AsyncTrainer",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_config",
    "evaluate",
    "parse_config",
    "play_episodes",
    "to_toml",
    "train",
]
