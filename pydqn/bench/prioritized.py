"""`pydqn bench --prioritized`: prioritized sampling and priority updates at 1M transitions, the C++
buffer's trees against the teaching-style Python ones (`PyReplayBuffer`) and against uniform
sampling. Observations are small, (4,) float32: the trees are what is measured, and 1M full
Python transitions must fit in memory."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from pydqn.bench.replay import median_seconds
from pydqn.replay.buffer import ReplayBuffer
from pydqn.replay.py_buffer import PyReplayBuffer

OBS_SHAPE = (4,)
NUM_ENVS = 8
BETA = 0.4
PRIORITIZED = ("ReplayBuffer", "PyReplayBuffer")
UNIFORM = "ReplayBuffer, uniform"


def make_filled_buffers(
    capacity: int, log: Callable[[str], None] = lambda m: None
) -> dict[str, ReplayBuffer | PyReplayBuffer]:
    """The two prioritized buffers and a uniform C++ one, each full, the prioritized ones with
    priorities drawn log-uniformly over four decades (a skewed, realistic tree)."""
    rng = np.random.default_rng(0)
    args: dict[str, Any] = dict(
        capacity=capacity, obs_shape=OBS_SHAPE, obs_dtype=torch.float32, num_envs=NUM_ENVS, seed=0
    )
    buffers: dict[str, ReplayBuffer | PyReplayBuffer] = {
        "ReplayBuffer": ReplayBuffer(**args, prioritized=True),
        "PyReplayBuffer": PyReplayBuffer(**args, prioritized=True),
        UNIFORM: ReplayBuffer(**args),
    }
    obs = rng.standard_normal((capacity // NUM_ENVS + 1, NUM_ENVS, *OBS_SHAPE)).astype(np.float32)
    action = np.zeros(NUM_ENVS, np.int64)
    reward = np.ones(NUM_ENVS, np.float32)
    ended = np.ones(NUM_ENVS, bool)  # one-step episodes: every row starts afresh
    for name, buffer in buffers.items():
        log(f"filling {name} with {capacity:,} transitions")
        for row in range(capacity // NUM_ENVS):
            buffer.add(obs[row], action, reward, obs[row + 1], ended, ~ended)
        if name in PRIORITIZED:
            priorities = 10.0 ** rng.uniform(-2, 2, len(buffer))
            for start in range(0, len(buffer), 65_536):
                ids = np.arange(start, min(start + 65_536, len(buffer)))
                buffer.update_priorities(ids, priorities[ids])
    return buffers


@dataclass
class PrioritizedRow:
    operation: str
    seconds: dict[str, float]


def run_prioritized_bench(
    capacity: int = 1_000_000,
    repeats: int = 300,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> list[PrioritizedRow]:
    """Medians of sample (B = 32, 256) and update_priorities (B = 32) on each buffer."""
    torch.set_num_threads(1)
    buffers = make_filled_buffers(capacity, log)
    rows = []
    for batch_size in (32, 256):
        seconds = {
            name: median_seconds(partial(buffers[name].sample, batch_size, beta=BETA), repeats)
            for name in PRIORITIZED
        }
        seconds[UNIFORM] = median_seconds(partial(buffers[UNIFORM].sample, batch_size), repeats)
        rows.append(PrioritizedRow(f"sample B={batch_size}", seconds))
    rng = np.random.default_rng(1)
    updates = lambda: (
        torch.from_numpy(rng.integers(0, capacity, 32)),
        torch.from_numpy(10.0 ** rng.uniform(-2, 2, 32)),
    )
    rows.append(
        PrioritizedRow(
            "update_priorities B=32",
            {
                name: median_seconds(buffers[name].update_priorities, repeats, prepare=updates)
                for name in PRIORITIZED
            },
        )
    )
    return rows


def format_prioritized_table(rows: list[PrioritizedRow], capacity: int) -> str:
    lines = [
        f"Prioritized replay at capacity {capacity:,}, obs {OBS_SHAPE} float32, alpha 0.6, "
        f"beta {BETA}; medians per call.",
        f"{'operation':<24}{'ReplayBuffer':>14}{'PyReplayBuffer':>16}{'uniform C++':>13}"
        f"{'Py / C++':>10}{'C++ / uniform':>15}",
    ]
    for row in rows:
        cpp, python = row.seconds["ReplayBuffer"], row.seconds["PyReplayBuffer"]
        uniform = row.seconds.get(UNIFORM)
        lines.append(
            f"{row.operation:<24}{cpp * 1e6:>11,.1f} us{python * 1e6:>13,.1f} us"
            + (f"{uniform * 1e6:>10,.1f} us" if uniform else f"{'-':>13}")
            + f"{python / cpp:>9.1f}x"
            + (f"{cpp / uniform:>14.2f}x" if uniform else f"{'-':>15}")
        )
    lines.append(
        "Py / C++: how many times faster the C++ trees are; C++ / uniform: the cost of "
        "prioritized sampling relative to uniform sampling in the same buffer."
    )
    return "\n".join(lines)
