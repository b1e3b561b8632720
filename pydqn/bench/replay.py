"""The replay-buffer benchmark workload, shared by `pydqn bench` and `benchmarks/`.

Atari-shaped transitions, (4, 84, 84) uint8 stacks, from env streams whose episodes last
`episode_length` steps and start with the first frame repeated (gymnasium's frame stacking).
Frames come from a pool of random frames, so consecutive frames differ and every new frame costs
the buffer a real store.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch

from pydqn.replay.buffer import ReplayBuffer
from pydqn.replay.py_buffer import PyReplayBuffer

FRAME_STACK = 4
FRAME_SHAPE = (84, 84)
OBS_SHAPE = (FRAME_STACK, *FRAME_SHAPE)


@dataclass
class AtariStreams:
    """Generates add() arguments for `num_envs` Atari-like env streams."""

    num_envs: int
    episode_length: int = 250
    pool_size: int = 1021  # prime, so env streams walk the pool out of step
    seed: int = 0
    pool: np.ndarray = field(init=False)
    steps: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.pool = rng.integers(0, 256, (self.pool_size, *FRAME_SHAPE), dtype=np.uint8)
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        self.rng = rng

    def rows(self, env_ids: np.ndarray) -> dict:
        """The next transition of each env in `env_ids`, as add() keyword arguments."""
        step = self.steps[env_ids]
        episode_step = step % self.episode_length
        offsets = np.arange(-(FRAME_STACK - 1), 1)
        obs_steps = np.maximum(step[:, None] + offsets, (step - episode_step)[:, None])
        next_steps = np.concatenate([obs_steps[:, 1:], step[:, None] + 1], axis=1)
        frame = lambda s: self.pool[(env_ids[:, None] * 7919 + s) % self.pool_size]
        self.steps[env_ids] += 1
        return dict(
            obs=frame(obs_steps),
            next_obs=frame(next_steps),
            action=self.rng.integers(0, 6, len(env_ids)),
            reward=self.rng.choice(np.array([-1.0, 0.0, 1.0], dtype=np.float32), len(env_ids)),
            terminated=episode_step == self.episode_length - 1,
            truncated=np.zeros(len(env_ids), dtype=bool),
            env_ids=env_ids,
        )


def make_buffers(capacity: int, num_envs: int) -> dict[str, ReplayBuffer | PyReplayBuffer]:
    args: dict[str, Any] = dict(
        capacity=capacity, obs_shape=OBS_SHAPE, frame_stack=FRAME_STACK, num_envs=num_envs, seed=0
    )
    return {"ReplayBuffer": ReplayBuffer(**args), "PyReplayBuffer": PyReplayBuffer(**args)}


def fill(buffer, streams: AtariStreams, transitions: int, log: Callable[[str], None] | None = None) -> None:
    """Add `transitions` transitions, all env streams stepping together."""
    all_envs = np.arange(streams.num_envs)
    started = time.perf_counter()
    for _ in range(transitions // streams.num_envs):
        buffer.add(**streams.rows(all_envs))
    if log:
        log(
            f"filled {type(buffer).__name__} with {transitions:,} transitions in "
            f"{time.perf_counter() - started:.1f} s"
        )


class NumpyGather:
    """The hardware reference: a plain numpy gather of the bytes one sample returns.

    Frames sit in one contiguous array; a batch of B reads 2 * FRAME_STACK random frames per row,
    the bytes of obs and next_obs.
    """

    def __init__(self, frames: int, seed: int = 0) -> None:
        self.frames = np.zeros((frames, *FRAME_SHAPE), dtype=np.uint8)
        self.frames[:] = np.random.default_rng(seed).integers(0, 256, FRAME_SHAPE, dtype=np.uint8)
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> np.ndarray:
        index = self.rng.integers(0, len(self.frames), (batch_size, 2 * FRAME_STACK))
        return np.take(self.frames, index, axis=0)


def next_rows(streams: AtariStreams, env_ids: np.ndarray) -> tuple[dict]:
    """`median_seconds`' arguments for one add() of the next transition of each of ``env_ids``."""
    return (streams.rows(env_ids),)


def median_seconds(
    call: Callable[..., object], repeats: int, prepare: Callable[[], tuple] | None = None
) -> float:
    """Median wall time of `call(*prepare())` over `repeats` calls, excluding `prepare`."""
    times = []
    for _ in range(repeats):
        args = prepare() if prepare else ()
        started = time.perf_counter()
        call(*args)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@dataclass
class BenchRow:
    operation: str
    cpp: float
    python: float
    numpy: float | None = None
    unit: str = "us"


def run_replay_bench(
    capacity: int = 100_000,
    repeats: int = 300,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> list[BenchRow]:
    """Measure both buffers (and the numpy gather) in one run; medians in microseconds."""
    torch.set_num_threads(1)
    rows: list[BenchRow] = []
    for num_envs in (1, 8):
        streams = {name: AtariStreams(num_envs) for name in ("ReplayBuffer", "PyReplayBuffer")}
        buffers = make_buffers(capacity, num_envs)
        for name, buffer in buffers.items():
            fill(buffer, streams[name], capacity + 1000, log)
        envs = np.arange(num_envs)
        add = {
            name: median_seconds(
                lambda rows, b=buffer: b.add(**rows), repeats, prepare=partial(next_rows, streams[name], envs)
            )
            for name, buffer in buffers.items()
        }
        rows.append(
            BenchRow(
                f"add {num_envs} (num_envs={num_envs})",
                add["ReplayBuffer"] * 1e6,
                add["PyReplayBuffer"] * 1e6,
            )
        )
        if num_envs == 1:
            # Stored bytes, before sample() has cached its output blocks (counted in nbytes too).
            rows.append(
                BenchRow(
                    "bytes per transition",
                    buffers["ReplayBuffer"].nbytes / capacity,
                    buffers["PyReplayBuffer"].nbytes / capacity,
                    unit="B",
                )
            )
            reference = NumpyGather(capacity + 1000)
            for batch_size in (32, 256):
                times = {
                    name: median_seconds(partial(buffer.sample, batch_size), repeats)
                    for name, buffer in buffers.items()
                }
                gather = median_seconds(partial(reference.sample, batch_size), repeats)
                rows.append(
                    BenchRow(
                        f"sample B={batch_size}",
                        times["ReplayBuffer"] * 1e6,
                        times["PyReplayBuffer"] * 1e6,
                        gather * 1e6,
                    )
                )
            del reference
        del buffers
    return rows


def format_table(rows: list[BenchRow], capacity: int) -> str:
    lines = [
        f"Replay buffers at Atari shapes {OBS_SHAPE} uint8, capacity {capacity:,}, torch threads "
        f"{torch.get_num_threads()}; medians (time per call, or bytes).",
        f"{'operation':<24}{'ReplayBuffer':>14}{'PyReplayBuffer':>16}{'numpy gather':>14}"
        f"{'Py / C++':>10}{'numpy / C++':>13}",
    ]
    for row in rows:
        numpy = f"{row.numpy:,.1f} {row.unit}" if row.numpy is not None else "-"
        vs_numpy = f"{row.numpy / row.cpp:.2f}x" if row.numpy is not None else "-"
        lines.append(
            f"{row.operation:<24}{row.cpp:>11,.1f} {row.unit}{row.python:>13,.1f} {row.unit}"
            f"{numpy:>14}{row.python / row.cpp:>9.1f}x{vs_numpy:>13}"
        )
    lines.append(
        "Py / C++ above 1 means the C++ buffer is faster (or smaller); numpy / C++ is the "
        "C++ sample's speed as a share of a plain numpy gather of the same bytes."
    )
    return "\n".join(lines)
