"""Training configuration: one typed dataclass, presets as data, TOML files and CLI overrides."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydqn.agent.learner import LearnerConfig
from pydqn.replay.checks import LIMITS
from pydqn.settings import (
    EPISODE_COUNTS,
    NON_NEGATIVE,
    POSITIVE,
    SEEDS,
    UNIT,
    Range,
    SettingError,
    check_setting,
    checked_fields,
    setting,
    setting_fields,
)

RUN, REPLAY, EXPLORATION, NETWORK = "run", "replay", "exploration", "network"
RECORDS, EVALUATION, ASYNC = "logs and checkpoints", "evaluation", "asynchronous training"
DISTRIBUTED = "distributed training (Ape-X on Ray)"
# The help's groups, in order (the learner's settings are LearnerConfig's "learning" group).
GROUPS = (RUN, REPLAY, EXPLORATION, "learning", NETWORK, EVALUATION, RECORDS, ASYNC, DISTRIBUTED)
MAX_THREADS = 1024
MAX_CHUNK_ROWS = 100_000  # ~700 MB of Atari frames in flight per actor


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as config.toml in the run directory.

    A resumed run may change the settings marked ``resumable`` (`RESUMABLE`): how long it trains,
    where and with how many threads, how often it logs, evaluates and checkpoints. The others
    decide the network, the replay buffer's contents or the env, and stay as the run began.

    The epsilon and prioritized-replay beta schedules span ``schedule_steps`` env steps (0: all of
    ``total_steps``). A resume that raises ``total_steps`` of a run with ``schedule_steps = 0`` pins
    ``schedule_steps`` to the old total, so that the schedules go on where they were instead of
    stretching (epsilon would jump back up): the extra steps train at the schedules' end values.
    """

    env_id: str = setting(
        "ALE/Pong-v5", "ALE/<Game>-v5, or a classic-control id such as CartPole-v1", group=RUN, flag="env"
    )
    total_steps: int = setting(
        10_000_000, "env steps to train, summed over the envs", group=RUN, valid=POSITIVE, resumable=True
    )
    num_envs: int = setting(
        8, "envs stepped together (without --actors; see envs_per_actor)", group=RUN, valid=Range(1, 1024)
    )
    seed: int = setting(
        1,
        "seeds the envs, the networks and the replay buffer",
        group=RUN,
        valid=SEEDS,
    )
    device: str = setting(
        "auto", "cpu, cuda or cuda:N; auto: cuda when available, else cpu", group=RUN, resumable=True
    )
    # See pydqn.device.torch_threads for what 0 picks and the measurements behind it.
    torch_threads: int = setting(
        0,
        "torch's CPU threads; 0: one per core this process may use",
        group=RUN,
        valid=Range(0, MAX_THREADS),
        resumable=True,
    )
    schedule_steps: int = setting(
        0,
        "env steps the epsilon and beta schedules span; 0: total_steps",
        group=RUN,
        valid=NON_NEGATIVE,
        resumable=True,
    )
    buffer_size: int = setting(
        1_000_000, "transitions the replay buffer keeps", group=REPLAY, valid=Range(1, LIMITS["capacity"])
    )
    # "python": the teaching-style PyReplayBuffer (full observation copies, slow), kept for
    # comparisons such as `pydqn bench --train`.
    replay: Literal["cpp", "python"] = setting(
        "cpp", "cpp: pydqn.ReplayBuffer; python: the pure-Python reference (slow)", group=REPLAY
    )
    n_step: int = setting(
        1,
        "n-step returns: learn from n rewards, then the bootstrap",
        group=REPLAY,
        valid=Range(1, LIMITS["n_step"]),
    )
    # Schaul et al. 2016, proportional: transition i is drawn with probability p_i^alpha / sum,
    # p = |TD error| + priority_epsilon from its last update, weighted by (N p_i)^-beta / max.
    prioritized: bool = setting(False, "prioritized replay (proportional)", group=REPLAY)
    priority_alpha: float = setting(0.6, "how much priorities count; 0: uniform", group=REPLAY, valid=UNIT)
    priority_beta: float = setting(
        0.4,
        "importance-sampling exponent at step 0, annealed to 1 over the schedule",
        group=REPLAY,
        valid=UNIT,
    )
    priority_epsilon: float = setting(
        1e-6,
        "added to |TD error| so that every priority is positive",
        group=REPLAY,
        valid=Range(0.0, 1.0, True),
    )
    # A resumed run then goes on updating at once instead of refilling with learning_starts steps.
    save_buffer: bool = setting(
        False,
        "checkpoints also save the replay buffer (replay.pt, about its memory size)",
        group=RECORDS,
        resumable=True,
    )
    batch_size: int = setting(32, "transitions per update", group=REPLAY, valid=Range(1, 65_536))
    learning_starts: int = setting(
        80_000, "env steps of random play before the first update", group=REPLAY, valid=POSITIVE
    )
    train_frequency: int = setting(
        4, "env steps per update (the replay ratio's inverse)", group=REPLAY, valid=POSITIVE
    )
    epsilon_start: float = setting(1.0, "exploration at step 0", group=EXPLORATION, valid=UNIT)
    epsilon_end: float = setting(0.01, "exploration after the decay", group=EXPLORATION, valid=UNIT)
    epsilon_fraction: float = setting(
        0.10, "fraction of the schedule epsilon decays over (linearly)", group=EXPLORATION, valid=UNIT
    )
    eval_epsilon: float = setting(
        0.001, "exploration while evaluating", group=EVALUATION, valid=UNIT, resumable=True
    )
    repeat_action_probability: float = setting(
        0.0, "Atari sticky actions (0.25 in Machado et al. 2018)", group=RUN, valid=UNIT
    )
    checkpoint_interval: int = setting(
        250_000, "env steps between checkpoints", group=RECORDS, valid=POSITIVE, resumable=True
    )
    log_interval: int = setting(
        10_000, "env steps between rows of metrics.csv", group=RECORDS, valid=POSITIVE, resumable=True
    )
    # DQN can degrade after it has solved a task: best.pt keeps the best evaluated policy.
    eval_interval: int = setting(
        0,
        "env steps between evaluations, kept as best.pt when best; 0: never",
        group=EVALUATION,
        valid=NON_NEGATIVE,
        resumable=True,
    )
    eval_episodes: int = setting(
        10, "episodes per evaluation", group=EVALUATION, valid=EPISODE_COUNTS, resumable=True
    )
    tensorboard: bool = setting(
        True, "also write the scalars to RUN_DIR/tensorboard (if installed)", group=RECORDS, resumable=True
    )
    # An actor thread steps the envs while a learner thread updates (see
    # pydqn.training.async_trainer): the actor acts with a copy of the online network refreshed
    # every actor_sync_interval updates, and stops while the learner is more than async_window
    # updates behind the replay ratio; the learner never runs ahead of it.
    asynchronous: bool = setting(
        False, "act and learn on two threads", group=ASYNC, resumable=True, flag="async"
    )
    actor_sync_interval: int = setting(
        50,
        "updates between refreshes of the actor's network (--async) or publications of the "
        "weights to the actors (--actors)",
        group=ASYNC,
        valid=POSITIVE,
        resumable=True,
    )
    async_window: int = setting(
        8,
        "updates the learner may lag before the actor waits",
        group=ASYNC,
        valid=POSITIVE,
        resumable=True,
    )
    # Ape-X (Horgan et al. 2018; see pydqn.distributed): Ray actor processes step their envs with
    # CPU copies of the online network and send experience in chunks to this process's learner.
    actors: int = setting(
        0,
        "Ray actor processes stepping envs (Ape-X); 0: act in this process",
        group=DISTRIBUTED,
        valid=Range(0, 1024),
    )
    envs_per_actor: int = setting(
        4, "envs each actor steps together", group=DISTRIBUTED, valid=Range(1, 1024)
    )
    actor_exploration: Literal["apex", "schedule"] = setting(
        "apex",
        "apex: actor i explores at actor_epsilon^(1 + actor_epsilon_alpha * i / (actors - 1)); "
        "schedule: every actor follows the epsilon schedule",
        group=DISTRIBUTED,
    )
    actor_epsilon: float = setting(0.4, "Ape-X's base exploration rate", group=DISTRIBUTED, valid=UNIT)
    actor_epsilon_alpha: float = setting(
        7.0,
        "how fast Ape-X's exploration rates fall across actors",
        group=DISTRIBUTED,
        valid=Range(0.0, 100.0),
    )
    chunk_steps: int = setting(
        50,
        "env steps per env in each chunk of experience an actor sends",
        group=DISTRIBUTED,
        valid=Range(1, 100_000),
        resumable=True,
    )
    # The rate limiter's samples per insert is batch_size / train_frequency, the sync trainer's ratio.
    rate_error_buffer: int = setting(
        0,
        "samples the replay ratio may stray either way; 0: two chunks' worth",
        group=DISTRIBUTED,
        valid=NON_NEGATIVE,
        resumable=True,
    )
    actor_max_restarts: int = setting(
        3,
        "restarts of a failed actor before the run stops",
        group=DISTRIBUTED,
        valid=Range(0, 10_000),
        resumable=True,
    )
    ray_address: str = setting(
        "",
        "auto or HOST:PORT: join that Ray cluster; empty: start a local one",
        group=DISTRIBUTED,
        resumable=True,
    )
    ray_num_cpus: int = setting(
        0,
        "CPUs of the local Ray cluster (one per actor); 0: the machine's",
        group=DISTRIBUTED,
        valid=Range(0, 65_536),
        resumable=True,
    )
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    dueling: bool = setting(False, "dueling heads (value + advantage)", group=NETWORK)
    hidden_sizes: tuple[int, ...] = setting(
        (120, 84), "MLP layer widths, for vector observations", group=NETWORK, valid=Range(1, 65_536)
    )

    def validate(self) -> TrainConfig:
        """This configuration with its values as their types hold them (a numpy integer becomes an
        int, a list a tuple); raises `SettingError` naming the first setting of the wrong type, out
        of its range or at odds with another."""
        return checked_fields(self)._check_together()

    def _check_together(self) -> TrainConfig:
        if len(self.hidden_sizes) > 16:
            raise SettingError(f"hidden_sizes: expected at most 16 layers, got {len(self.hidden_sizes)}")
        if self.asynchronous and self.replay != "cpp":
            raise SettingError(
                "asynchronous: the actor and learner threads share the buffer, which "
                "needs replay = 'cpp' (PyReplayBuffer is not thread-safe)"
            )
        if self.actors and self.replay != "cpp":
            raise SettingError(
                "actors: the learner ingests and samples on two threads, which needs replay = 'cpp'"
            )
        if self.actors and self.asynchronous:
            raise SettingError("asynchronous: --async and --actors are two trainers; choose one")
        if self.ray_address and not self.actors:
            raise SettingError("ray_address: joins a Ray cluster for --actors N; give --actors too")
        if self.ray_num_cpus and not self.actors:
            raise SettingError("ray_num_cpus: sizes a Ray cluster for --actors N; give --actors too")
        if self.ray_address and self.ray_num_cpus:
            raise SettingError(
                "ray_num_cpus: sizes a local Ray cluster; a joined one (ray_address) has its own "
                "(pass --ray-num-cpus 0 with --ray-address)"
            )
        if self.actors and self.chunk_rows > min(self.buffer_size, MAX_CHUNK_ROWS):
            raise SettingError(
                f"chunk_steps: a chunk of chunk_steps x envs_per_actor = {self.chunk_rows:,} rows must fit "
                f"the buffer (buffer_size={self.buffer_size:,}) and stay within {MAX_CHUNK_ROWS:,} rows"
            )
        if self.rate_error_buffer and self.rate_error_buffer < self.least_error_buffer:
            raise SettingError(
                f"rate_error_buffer: expected at least {self.least_error_buffer:g} (one chunk of "
                f"{self.chunk_rows} rows is worth that many samples), or 0, got {self.rate_error_buffer}"
            )
        if self.save_buffer and self.replay != "cpp":
            raise SettingError("save_buffer: saving the buffer needs replay = 'cpp'")
        if self.learning_starts < self.batch_size:
            raise SettingError(
                f"learning_starts: expected at least batch_size={self.batch_size}, got {self.learning_starts}"
            )
        if self.batch_size > self.buffer_size:
            raise SettingError(
                f"batch_size: expected at most buffer_size={self.buffer_size}, got {self.batch_size}"
            )
        return self

    @property
    def replay_streams(self) -> int:
        """Env streams the replay buffer keeps: ``num_envs``, or every actor's envs with ``actors``."""
        return self.actors * self.envs_per_actor if self.actors else self.num_envs

    @property
    def samples_per_insert(self) -> float:
        """Transitions sampled per transition stored: the replay ratio ``train_frequency`` sets."""
        return self.batch_size / self.train_frequency

    @property
    def chunk_rows(self) -> int:
        """Transitions in an actor's full chunk."""
        return self.chunk_steps * self.envs_per_actor

    @property
    def least_error_buffer(self) -> float:
        """The smallest error buffer that lets a whole chunk in and a whole batch out."""
        return max(self.samples_per_insert * self.chunk_rows, float(self.batch_size))

    @property
    def error_buffer(self) -> float:
        """How far the replay ratio may stray, in samples (``rate_error_buffer``, 0: two chunks')."""
        return float(self.rate_error_buffer) or 2 * self.least_error_buffer

    @property
    def schedule_length(self) -> int:
        """Env steps the epsilon and beta schedules span."""
        return self.schedule_steps or self.total_steps


RESUMABLE = frozenset(
    [f.name for f, _ in setting_fields(TrainConfig) if f.metadata.get("resumable")]
    + [f"learner.{f.name}" for f, _ in setting_fields(LearnerConfig) if f.metadata.get("resumable")]
)


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


def annealed_beta(start: float, progress: float) -> float:
    """Prioritized replay's importance-sampling exponent at ``progress`` (0 to 1) through its
    schedule: ``start`` (``priority_beta``) annealed linearly to 1, then held there."""
    return start + (1.0 - start) * min(1.0, progress)


def build_config(
    preset: str | Sequence[str] | None = None,
    overrides: dict[str, Any] | None = None,
    toml_path: str | Path | None = None,
    base: TrainConfig | None = None,
) -> TrainConfig:
    """``base`` (default: the defaults), then the presets (env presets in order, then component
    presets such as rainbow-lite), then a TOML file, then explicit overrides. Raises
    `SettingError` for an unknown setting or a value of the wrong type or range (naming the TOML
    file when it came from one), `ConfigFileError` for a TOML file that cannot be read."""
    config = base or TrainConfig()
    names = [preset] if isinstance(preset, str) else list(preset or ())
    for name in names:
        if name not in PRESETS:
            raise SettingError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
    # Component presets go after env presets whatever the order given, so that an env preset's
    # choices (cartpole's double = false) never undo them.
    names.sort(key=lambda name: name in COMPONENT_PRESETS)
    layers = [("", PRESETS[name]) for name in names]
    if toml_path is not None:
        layers.append((f"{toml_path}: ", read_toml(Path(toml_path))))
    if overrides:
        layers.append(("", overrides))
    for source, layer in layers:
        config = _merge(config, layer, where="", source=source)
    return config.validate()


class ConfigFileError(ValueError):
    """A TOML file of settings that is missing, unreadable or not valid TOML."""


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of TOML file ``path``; raises `ConfigFileError` naming it."""
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigFileError(f"config: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigFileError(f"config: cannot read {path}: {getattr(error, 'strerror', error)}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError(f"config: {path} is not valid TOML: {error}") from None


def parse_config(text: str) -> TrainConfig:
    """A TrainConfig from TOML text such as `to_toml` writes (a checkpoint carries one)."""
    return _merge(TrainConfig(), tomllib.loads(text), where="", source="").validate()


def _merge(obj: Any, values: dict[str, Any], where: str, source: str) -> Any:
    fields = {f.name: (f, hint) for f, hint in setting_fields(type(obj))}
    changes = {}
    for key, value in values.items():
        if key not in fields:
            raise SettingError(f"{source}{where}{key}: unknown setting; expected one of {sorted(fields)}")
        field_, hint = fields[key]
        if dataclasses.is_dataclass(getattr(obj, key)):
            if not isinstance(value, dict):
                raise SettingError(f"{source}{where}{key}: expected a table of settings, got {value!r}")
            changes[key] = _merge(getattr(obj, key), value, f"{where}{key}.", source)
        else:
            try:
                changes[key] = check_setting(f"{where}{key}", hint, value, field_.metadata.get("valid"))
            except SettingError as error:
                raise SettingError(f"{source}{error}") from None
    return dataclasses.replace(obj, **changes)


def resumed_config(saved: TrainConfig, requested: TrainConfig, source: str = "") -> TrainConfig:
    """The configuration a resumed run continues with: ``requested``, which may differ from the
    run's ``saved`` one only in `RESUMABLE` settings (else `SettingError` names the others, after
    ``source``, where the request came from). A longer run keeps its schedules' length (see
    `TrainConfig`)."""
    changed = [name for name in _setting_names(saved) if _get(saved, name) != _get(requested, name)]
    fixed = [name for name in changed if name not in RESUMABLE]
    if fixed:
        details = ", ".join(f"{name} ({_get(saved, name)!r} -> {_get(requested, name)!r})" for name in fixed)
        raise SettingError(
            f"{source}{', '.join(fixed)}: a resumed run keeps the settings that decide its network, replay "
            f"buffer and env; asked to change {details}. Resumable: {', '.join(sorted(RESUMABLE))}"
        )
    if "total_steps" in changed and "schedule_steps" not in changed and not saved.schedule_steps:
        requested = dataclasses.replace(requested, schedule_steps=saved.total_steps)
    return requested.validate()


def _setting_names(config: Any, prefix: str = "") -> list[str]:
    names = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        names += (
            _setting_names(value, f"{prefix}{f.name}.")
            if dataclasses.is_dataclass(value)
            else [prefix + f.name]
        )
    return names


def _get(config: Any, name: str) -> Any:
    for part in name.split("."):
        config = getattr(config, part)
    return config


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
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
