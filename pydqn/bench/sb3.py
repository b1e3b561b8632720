"""The Stable-Baselines3 benchmark workload, shared by `pydqn bench --sb3` and `benchmarks/`.

SB3's ``ReplayBuffer``, plain and with ``optimize_memory_usage``, against pydqn's drop-in
(`pydqn.integrations.sb3.ReplayBuffer`), fed the same SB3-style calls of Atari-shaped transitions
(`AtariStreams`: (4, 84, 84) uint8 stacks); then SB3's own ``DQN.learn`` on Pong with each.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.save_util import save_to_pkl
from stable_baselines3.common.vec_env import VecFrameStack

from pydqn.bench.replay import OBS_SHAPE, AtariStreams, median_seconds
from pydqn.integrations.sb3 import ReplayBuffer

OBSERVATIONS = spaces.Box(0, 255, OBS_SHAPE, dtype=np.uint8)
ACTIONS = spaces.Discrete(6)
# SB3 refuses optimize_memory_usage with timeout handling; pydqn's buffer takes both.
VARIANTS: dict[str, dict[str, Any]] = {
    "SB3": {"optimize_memory_usage": False, "handle_timeout_termination": True},
    "SB3 optimized": {"optimize_memory_usage": True, "handle_timeout_termination": False},
}
COLUMNS = ("SB3", "SB3 optimized", "pydqn")


def make_buffers(capacity: int, n_envs: int) -> dict[str, SB3ReplayBuffer]:
    buffers: dict[str, SB3ReplayBuffer] = {
        name: SB3ReplayBuffer(capacity, OBSERVATIONS, ACTIONS, "cpu", n_envs, **options)
        for name, options in VARIANTS.items()
    }
    buffers["pydqn"] = ReplayBuffer(capacity, OBSERVATIONS, ACTIONS, "cpu", n_envs, seed=0)
    return buffers


def sb3_call(streams: AtariStreams) -> tuple[Any, ...]:
    """The next transition of every env, as SB3's off-policy loop hands it to ``add``."""
    rows = streams.rows(np.arange(streams.num_envs))
    done = rows["terminated"] | rows["truncated"]
    infos = [{"TimeLimit.truncated": bool(t)} for t in rows["truncated"]]
    return rows["obs"], rows["next_obs"], rows["action"], rows["reward"], done, infos


def filled(capacity: int, n_envs: int, transitions: int | None = None) -> dict[str, SB3ReplayBuffer]:
    """Every buffer given the same calls, past capacity (each from its own equal stream)."""
    buffers = make_buffers(capacity, n_envs)
    for buffer in buffers.values():
        streams = AtariStreams(n_envs)
        for _ in range((transitions or capacity + 1000) // n_envs):
            buffer.add(*sb3_call(streams))
    return buffers


def bytes_per_transition(buffer: SB3ReplayBuffer) -> float:
    """Stored bytes over capacity: SB3's arrays, or pydqn's ``nbytes`` (read before any sample,
    which keeps two batch blocks for reuse)."""
    if isinstance(buffer, ReplayBuffer):
        held = buffer.nbytes
    else:
        arrays = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
        held = sum(getattr(buffer, name).nbytes for name in arrays if hasattr(buffer, name))
    return held / (buffer.buffer_size * buffer.n_envs)


def save_seconds_and_bytes(buffer: SB3ReplayBuffer, folder: Path) -> tuple[float, int]:
    """``model.save_replay_buffer``'s work (SB3's save_to_pkl): its time and the file's size."""
    path = folder / "replay.pkl"
    started = time.perf_counter()
    save_to_pkl(path, buffer)
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    path.unlink()
    return seconds, size


@dataclass
class SB3BenchRow:
    operation: str
    values: dict[str, float]  # by COLUMNS
    unit: str


def run_sb3_bench(
    capacity: int = 100_000,
    repeats: int = 300,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> list[SB3BenchRow]:
    """The buffers' add, sample, memory and save, measured in one run; medians."""
    torch.set_num_threads(1)
    rows: list[SB3BenchRow] = []
    for n_envs in (1, 8):
        buffers = filled(capacity, n_envs)
        log(f"filled the three buffers with {capacity + 1000:,} transitions ({n_envs} env(s))")
        streams = {name: AtariStreams(n_envs, seed=1) for name in buffers}
        add = {
            name: median_seconds(buffer.add, repeats, prepare=partial(sb3_call, streams[name]))
            for name, buffer in buffers.items()
        }
        rows.append(SB3BenchRow(f"add (n_envs={n_envs})", _micro(add), "us"))
        if n_envs > 1:
            continue
        rows.append(
            SB3BenchRow("bytes per transition", {n: bytes_per_transition(b) for n, b in buffers.items()}, "B")
        )
        for batch_size in (32, 256):
            times = {n: median_seconds(partial(b.sample, batch_size), repeats) for n, b in buffers.items()}
            rows.append(SB3BenchRow(f"sample B={batch_size}", _micro(times), "us"))
        with tempfile.TemporaryDirectory(dir=os.environ.get("PYDQN_BENCH_TMP")) as folder:
            saved = {name: save_seconds_and_bytes(buffer, Path(folder)) for name, buffer in buffers.items()}
        rows.append(SB3BenchRow("save_replay_buffer", {n: s for n, (s, _) in saved.items()}, "s"))
        rows.append(
            SB3BenchRow("save_replay_buffer size", {n: b / 2**20 for n, (_, b) in saved.items()}, "MiB")
        )
        del buffers
    return rows


def _micro(seconds: dict[str, float]) -> dict[str, float]:
    return {name: s * 1e6 for name, s in seconds.items()}


def run_learn_bench(
    env_id: str = "ALE/Pong-v5",
    steps: int = 4_000,
    learning_starts: int = 2_000,
    n_envs: int = 4,
    buffer_size: int = 100_000,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> SB3BenchRow:
    """SB3's ``DQN.learn`` on ``env_id`` (SB3's Atari wrappers, 4-frame stacks), the same
    configuration with each buffer: env steps per second once learning has started."""
    rates: dict[str, float] = {}
    for name in COLUMNS:
        env = VecFrameStack(make_atari_env(env_id, n_envs=n_envs, seed=0), 4)
        options = VARIANTS.get(name, {})
        model = DQN(
            "CnnPolicy",
            env,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            train_freq=4,
            seed=0,
            device="cpu",
            replay_buffer_class=ReplayBuffer if name == "pydqn" else SB3ReplayBuffer,
            optimize_memory_usage=options.get("optimize_memory_usage", False),
            replay_buffer_kwargs={k: v for k, v in options.items() if k != "optimize_memory_usage"},
        )
        model.learn(learning_starts)
        started = time.perf_counter()
        model.learn(steps, reset_num_timesteps=False)
        rates[name] = steps / (time.perf_counter() - started)
        log(f"DQN.learn with {name}: {rates[name]:.1f} env steps/s")
        env.close()
    return SB3BenchRow(f"DQN.learn {env_id} ({n_envs} envs)", rates, "steps/s")


def format_sb3_table(rows: list[SB3BenchRow], capacity: int) -> str:
    """The table, with how many times better pydqn's buffer does than each of SB3's (>1: faster,
    smaller, more steps/s)."""
    lines = [
        f"SB3's ReplayBuffer vs pydqn.integrations.sb3.ReplayBuffer at Atari shapes {OBS_SHAPE} "
        f"uint8, capacity {capacity:,}, torch threads {torch.get_num_threads()}; medians.",
        f"{'operation':<34}" + "".join(f"{name:>16}" for name in COLUMNS) + f"{'vs SB3':>10}{'vs opt':>10}",
    ]
    for row in rows:
        ours = row.values["pydqn"]
        ratios = [row.values[name] / ours for name in VARIANTS]
        if row.unit == "steps/s":
            ratios = [1 / r for r in ratios]
        lines.append(
            f"{row.operation:<34}"
            + "".join(f"{row.values[name]:>12,.1f} {row.unit:<3}" for name in COLUMNS)
            + "".join(f"{ratio:>9.2f}x" for ratio in ratios)
        )
    return "\n".join(lines)
