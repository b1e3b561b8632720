"""Training configuration: one typed dataclass, presets as data, TOML files and CLI overrides."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydqn.agent.learner import LearnerConfig


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as config.toml in the run directory."""

    env_id: str = "ALE/Pong-v5"
    total_steps: int = 10_000_000  # env steps, summed over envs
    num_envs: int = 8
    seed: int = 1
    device: str = "auto"  # "auto": cuda when available, else cpu
    # torch's CPU threads; 0 keeps torch's default. Small networks run best on 1: torch's default
    # of one per core collapses when envs or another process keep the other cores busy.
    torch_threads: int = 0
    buffer_size: int = 1_000_000
    # "cpp": pydqn.ReplayBuffer. "python": the teaching-style PyReplayBuffer (full observation
    # copies, slow), kept for comparisons such as `pydqn bench --train`.
    replay: Literal["cpp", "python"] = "cpp"
    # n-step returns: learn from sum_{j<n} gamma^j r_{t+j} + gamma^n max_a Q(s_{t+n}, a).
    n_step: int = 1
    # Prioritized replay (Schaul et al. 2016, proportional): transitions are drawn with
    # probability p^priority_alpha / sum, p = |TD error| + priority_epsilon from their last
    # update, and the loss weighs each by its importance-sampling weight, whose exponent beta
    # anneals linearly from priority_beta at step 0 to 1 at total_steps.
    prioritized: bool = False
    priority_alpha: float = 0.6
    priority_beta: float = 0.4
    priority_epsilon: float = 1e-6
    # Checkpoints also save the replay buffer (replay.pt, about its nbytes), so a resumed run goes
    # on updating at once instead of refilling it with learning_starts steps.
    save_buffer: bool = False
    batch_size: int = 32
    learning_starts: int = 80_000  # env steps of random play before the first update
    train_frequency: int = 4  # env steps per update (the replay ratio is its inverse)
    epsilon_start: float = 1.0
    epsilon_end: float = 0.01
    epsilon_fraction: float = 0.10  # of total_steps to decay over
    eval_epsilon: float = 0.001
    repeat_action_probability: float = 0.0
    checkpoint_interval: int = 250_000  # env steps between checkpoints
    log_interval: int = 10_000  # env steps between training-metric rows
    # Every eval_interval env steps (0: never), play eval_episodes greedy episodes on separate envs
    # and keep the best policy so far as best.pt (DQN can degrade after it has solved a task).
    eval_interval: int = 0
    eval_episodes: int = 10
    tensorboard: bool = True  # also write the logged scalars to RUN_DIR/tensorboard, if installed
    # `pydqn train --async`: an actor thread steps the envs while a learner thread updates (see
    # pydqn.async_train). The actor acts with a copy of the online network refreshed every
    # actor_sync_interval updates, and stops while the learner is more than async_window
    # updates behind the replay ratio; the learner never runs ahead of it.
    asynchronous: bool = False
    actor_sync_interval: int = 50
    async_window: int = 8
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    dueling: bool = False
    hidden_sizes: tuple[int, ...] = (120, 84)  # MLP torso, for vector observations

    def validate(self) -> TrainConfig:
        positive = (
            "total_steps",
            "num_envs",
            "buffer_size",
            "batch_size",
            "train_frequency",
            "checkpoint_interval",
            "log_interval",
            "eval_episodes",
            "actor_sync_interval",
            "async_window",
            "n_step",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.eval_interval < 0:
            raise ValueError(f"eval_interval: expected 0 (never) or more, got {self.eval_interval}")
        if self.torch_threads < 0:
            raise ValueError(f"torch_threads: expected 0 (torch's default) or more, got {self.torch_threads}")
        for name in (
            "epsilon_start",
            "epsilon_end",
            "epsilon_fraction",
            "eval_epsilon",
            "repeat_action_probability",
            "priority_alpha",
            "priority_beta",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        if not self.priority_epsilon > 0.0:
            raise ValueError(
                f"priority_epsilon: expected a value > 0 (a priority must be positive), "
                f"got {self.priority_epsilon}"
            )
        if self.replay not in ("cpp", "python"):
            raise ValueError(f"replay: expected 'cpp' or 'python', got {self.replay!r}")
        if self.asynchronous and self.replay != "cpp":
            raise ValueError(
                "asynchronous: the actor and learner threads share the buffer, which "
                "needs replay = 'cpp' (PyReplayBuffer is not thread-safe)"
            )
        if self.save_buffer and self.replay != "cpp":
            raise ValueError("save_buffer: saving the buffer needs replay = 'cpp'")
        if self.learning_starts < self.batch_size:
            raise ValueError(
                f"learning_starts: expected at least batch_size={self.batch_size}, got {self.learning_starts}"
            )
        return self


PresetName = Literal["atari", "nature2015", "cartpole", "rainbow-lite"]

# Known-good settings. atari: CleanRL's dqn_atari (Adam 1e-4, Huber, target every 1000 updates).
# nature2015: Mnih et al. 2015 (RMSprop 2.5e-4, target every 10k steps, 1M-step epsilon decay).
# rainbow-lite: the Rainbow components that need no distributional head or noisy nets (Hessel
# et al. 2018): Double, dueling, 3-step returns, prioritized replay with Rainbow's alpha 0.5 and
# beta 0.4 -> 1. It sets only those, so it stacks on an env preset: --preset cartpole rainbow-lite.
PRESETS: dict[str, dict[str, Any]] = {
    "atari": {},
    "nature2015": {
        "num_envs": 1,
        "train_frequency": 4,
        "learning_starts": 50_000,
        "epsilon_end": 0.1,
        "epsilon_fraction": 0.1,
        "eval_epsilon": 0.05,
        "total_steps": 10_000_000,
        "learner": {
            "optimizer": "rmsprop",
            "learning_rate": 2.5e-4,
            "double": False,
            "target_update_interval": 2_500,
        },
    },
    "cartpole": {
        # Solves CartPole-v1 (greedy mean 500) within 100k steps in ~3 CPU minutes; replay ratio
        # 0.5 and a target held for 128 updates, after rl-baselines3-zoo's DQN settings.
        "env_id": "CartPole-v1",
        "total_steps": 100_000,
        "num_envs": 1,
        "torch_threads": 1,
        "buffer_size": 100_000,
        "batch_size": 64,
        "learning_starts": 1_000,
        "train_frequency": 2,
        "epsilon_end": 0.04,
        "epsilon_fraction": 0.16,
        "eval_epsilon": 0.0,
        "checkpoint_interval": 25_000,
        "log_interval": 2_000,
        "hidden_sizes": (256, 256),
        "eval_interval": 5_000,
        "eval_episodes": 10,
        "learner": {
            "learning_rate": 2.3e-3,
            "adam_eps": 1e-8,
            "loss": "huber",
            "double": False,
            "target_update_interval": 128,
        },
    },
    "rainbow-lite": {
        "dueling": True,
        "n_step": 3,
        "prioritized": True,
        "priority_alpha": 0.5,
        "priority_beta": 0.4,
        "learner": {"double": True},
    },
}


COMPONENT_PRESETS = {"rainbow-lite"}


def build_config(
    preset: str | Sequence[str] | None = None,
    overrides: dict[str, Any] | None = None,
    toml_path: str | Path | None = None,
) -> TrainConfig:
    """Defaults, then the presets (env presets in order, then component presets such as
    rainbow-lite), then a TOML file, then explicit overrides; unknown keys fail."""
    config = TrainConfig()
    names = [preset] if isinstance(preset, str) else list(preset or ())
    for name in names:
        if name not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
    # Component presets go after env presets whatever the order given, so that an env preset's
    # choices (cartpole's double = false) never undo them.
    names.sort(key=lambda name: name in COMPONENT_PRESETS)
    layers = [PRESETS[name] for name in names]
    if toml_path is not None:
        with open(toml_path, "rb") as file:
            layers.append(tomllib.load(file))
    if overrides:
        layers.append(overrides)
    for layer in layers:
        config = _merge(config, layer, where="")
    return config.validate()


def parse_config(text: str) -> TrainConfig:
    """A TrainConfig from TOML text such as `to_toml` writes (a checkpoint carries one)."""
    return _merge(TrainConfig(), tomllib.loads(text), where="").validate()


def _merge(obj: Any, values: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in values.items():
        if key not in fields:
            raise ValueError(f"{where}{key}: unknown setting; expected one of {sorted(fields)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"{where}{key}: expected a table of settings, got {value!r}")
            changes[key] = _merge(current, value, where=f"{where}{key}.")
        else:
            changes[key] = _coerce(f"{where}{key}", value, current)
    return dataclasses.replace(obj, **changes)


def _coerce(name: str, value: Any, current: Any) -> Any:
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
        return value
    if isinstance(current, tuple):
        return tuple(int(v) for v in value)
    if current is None or isinstance(current, str):
        return value
    try:
        return type(current)(value)
    except (TypeError, ValueError):
        kind = {int: "an integer", float: "a number"}.get(type(current), type(current).__name__)
        raise ValueError(f"{name}: expected {kind}, got {value!r}") from None


def to_toml(config: TrainConfig) -> str:
    """The resolved configuration as TOML (what a run directory records)."""
    lines, tables = [], []
    for key, value in dataclasses.asdict(config).items():
        if isinstance(value, dict):
            tables.append(f"\n[{key}]")
            tables += [f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\\\", "\\\\\\\\").replace('"', '\\\\"') + '"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
