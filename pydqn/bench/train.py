"""`pydqn bench --train`: the training loop's throughput with each replay buffer, and where its
time goes (acting, env stepping, buffer operations, learning)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from pydqn.device import resolve_device
from pydqn.envs import frames_per_step, is_atari_id
from pydqn.training.config import TrainConfig, build_config
from pydqn.training.phase_clock import PHASES
from pydqn.training.run import trainer_class


class Variant(NamedTuple):
    replay: str
    asynchronous: bool = False
    cuda_graph: bool = False
    prioritized: bool = False


VARIANTS = {
    "sync, PyReplayBuffer": Variant("python"),
    "sync, C++ ReplayBuffer": Variant("cpp"),
    "sync, C++, prioritized": Variant("cpp", prioritized=True),
    "async, C++ ReplayBuffer": Variant("cpp", asynchronous=True),
}
CUDA_VARIANTS = {
    "sync, C++, CUDA graph": Variant("cpp", cuda_graph=True),
    "async, C++, CUDA graph": Variant("cpp", asynchronous=True, cuda_graph=True),
}


@dataclass
class TrainBenchRow:
    variant: str
    frames_per_s: float
    updates_per_s: float
    seconds: float  # timed wall time: from the first update to the end
    shares: dict[str, float]


def bench_config(
    env_id: str,
    steps: int,
    learning_starts: int,
    num_envs: int,
    device: str,
    torch_threads: int,
    variant: Variant,
) -> TrainConfig:
    """The preset's settings (Atari: batch 32, one update per 4 env steps), shortened to a
    benchmark: no checkpoints, evaluations or TensorBoard inside the timed loop."""
    preset = "atari" if is_atari_id(env_id) else "cartpole"
    return build_config(
        preset,
        {
            "env_id": env_id,
            "total_steps": steps,
            "learning_starts": learning_starts,
            "num_envs": num_envs,
            "device": device,
            "torch_threads": torch_threads,
            "replay": variant.replay,
            "asynchronous": variant.asynchronous,
            "prioritized": variant.prioritized,
            "buffer_size": steps,
            "checkpoint_interval": steps,
            "log_interval": steps,
            "eval_interval": 0,
            "tensorboard": False,
            "learner": {"cuda_graph": variant.cuda_graph},
        },
    )


def run_train_bench(
    env_id: str = "ALE/Pong-v5",
    steps: int = 6_000,
    learning_starts: int = 2_000,
    num_envs: int = 8,
    device: str = "auto",
    torch_threads: int = 1,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> tuple[TrainConfig, list[TrainBenchRow]]:
    """Train ``steps`` env steps once per variant; time from the first update on. The async
    trainer's phases add up both threads' time, so its shares are of twice the wall time."""
    rows = []
    variants = dict(VARIANTS)
    if resolve_device(device).type == "cuda":
        variants.update(CUDA_VARIANTS)
    for name, variant in variants.items():
        config = bench_config(env_id, steps, learning_starts, num_envs, device, torch_threads, variant)
        log(f"bench --train: {name}: {steps:,} env steps of {env_id}, updates from step {learning_starts:,}")
        with tempfile.TemporaryDirectory(prefix="pydqn-bench-") as run_dir:
            trainer = trainer_class(config)(config, Path(run_dir), synchronize_phases=True)
            try:
                result = trainer.run()
            finally:
                trainer.close()
        booked, seconds = sum(result.phase_seconds.values()), result.timed_seconds
        frames = result.timed_steps * frames_per_step(config.env_id)
        rows.append(
            TrainBenchRow(
                name,
                frames / seconds,
                result.timed_updates / seconds,
                seconds,
                {p: s / booked for p, s in result.phase_seconds.items()},
            )
        )
    return config, rows


def format_train_table(config: TrainConfig, rows: list[TrainBenchRow], torch_threads: int) -> str:
    lines = [
        f"Training loop on {config.env_id}: {config.num_envs} envs, batch {config.batch_size}, "
        f"{1 / config.train_frequency:g} updates per env step, {resolve_device(config.device)} device, "
        f"{torch_threads} torch threads; timed from the first update (step "
        f"{config.learning_starts:,}) to step {config.total_steps:,}.",
        f"{'variant':<26}{'frames/s':>10}{'updates/s':>11}{'seconds':>9}"
        + "".join(f"{phase:>10}" for phase in PHASES),
    ]
    for row in rows:
        lines.append(
            f"{row.variant:<26}{row.frames_per_s:>10,.0f}{row.updates_per_s:>11,.1f}"
            f"{row.seconds:>9,.1f}" + "".join(f"{row.shares[p]:>10.1%}" for p in PHASES)
        )
    baseline = rows[0].frames_per_s
    lines.append(
        "frames/s vs the first row: "
        + ", ".join(f"{row.variant} {row.frames_per_s / baseline:.2f}x" for row in rows[1:])
    )
    lines.append(
        "Shares are of the time booked: the wall time, or for async the actor's and the "
        "learner's time together."
    )
    return "\n".join(lines)
