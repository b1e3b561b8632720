"""`pydqn bench --sample-device DEVICE`: batches of Atari stacks delivered on a device, three ways:
the buffer that lives there and samples with one kernel, the host C++ buffer plus a pinned
asynchronous copy, and the pure-Python buffer plus ``.to(device)``. Every call waits for the
device before its time is taken. On ``cpu`` the first is the CUDA path's CPU twin."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from pydqn.agent.placement import PinnedStaging
from pydqn.bench.replay import FRAME_STACK, OBS_SHAPE, AtariStreams, fill, median_seconds
from pydqn.device import resolve_device
from pydqn.replay import ReplayLike
from pydqn.replay.batch import Batch
from pydqn.replay.buffer import ReplayBuffer
from pydqn.replay.py_buffer import PyReplayBuffer

RESIDENT, HOST, PYTHON = "device-resident", "host C++ + copy", "PyReplayBuffer + .to"
# Envs the buffers are filled from: eight rows per add call fill a 1M buffer in far fewer calls,
# and the streams a buffer holds do not change what a sample costs.
NUM_ENVS = 8


@dataclass
class DeviceRow:
    batch_size: int
    seconds: dict[str, float]


def delivery(device: torch.device) -> dict[str, Callable[[ReplayLike, int], Batch]]:
    """How each variant turns a buffer and a batch size into a batch on `device`, waited for."""
    wait = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    staging = PinnedStaging(device) if device.type == "cuda" else None

    def resident(buffer, batch_size):
        batch = buffer.sample(batch_size)
        wait()
        return batch

    def host(buffer, batch_size):
        batch = buffer.sample(batch_size)
        batch = staging.to_device(batch) if staging else batch
        wait()
        return batch

    def python(buffer, batch_size):
        batch = Batch(*(t.to(device) for t in buffer.sample(batch_size)))
        wait()
        return batch

    return {RESIDENT: resident, HOST: host, PYTHON: python}


def buffer_makers(
    device: torch.device, capacity: int, python_capacity: int | None = None
) -> dict[str, Callable[[], ReplayBuffer | PyReplayBuffer]]:
    """Each variant's (empty) buffer, made on demand: one full 1M buffer at a time fits. The Python
    buffer holds ``python_capacity`` when given (it keeps ~56 KB per transition, and fills at
    ~8,000 per second on the 2-core machine)."""
    args: dict[str, Any] = dict(obs_shape=OBS_SHAPE, frame_stack=FRAME_STACK, num_envs=NUM_ENVS, seed=0)
    return {
        RESIDENT: lambda: ReplayBuffer(capacity, **args, device=device, sampler="kernel"),
        HOST: lambda: ReplayBuffer(capacity, **args),
        PYTHON: lambda: PyReplayBuffer(python_capacity or capacity, **args),
    }


def run_device_bench(
    device: str,
    capacity: int = 1_000_000,
    repeats: int = 300,
    python_capacity: int | None = None,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> list[DeviceRow]:
    """Medians of delivering B = 32 and 256 samples on `device`, one buffer filled at a time."""
    torch.set_num_threads(1)
    target = resolve_device(device)
    makers = buffer_makers(target, capacity, python_capacity)
    seconds: dict[int, dict[str, float]] = {32: {}, 256: {}}
    for name, deliver in delivery(target).items():
        buffer = makers[name]()
        fill(buffer, AtariStreams(NUM_ENVS), buffer.capacity + 1000, log)
        for batch_size in seconds:
            deliver(buffer, batch_size)  # warm-up: allocator, pinned blocks, kernels
            seconds[batch_size][name] = median_seconds(partial(deliver, buffer, batch_size), repeats)
        if isinstance(buffer, ReplayBuffer) and name == RESIDENT:
            log(f"{name}: {buffer.device_nbytes / 2**30:.2f} GiB on {target}")
        del buffer
    return [DeviceRow(batch_size, times) for batch_size, times in seconds.items()]


def format_device_table(
    rows: list[DeviceRow], device: str, capacity: int, python_capacity: int | None = None
) -> str:
    python = f" (PyReplayBuffer {python_capacity:,})" if python_capacity else ""
    lines = [
        f"Batches of {OBS_SHAPE} uint8 stacks delivered on {device}, capacity {capacity:,}{python}; "
        f"medians per call, waiting for the device.",
        f"{'batch':<8}{RESIDENT:>17}{HOST:>18}{PYTHON:>22}{'host / resident':>17}{'Py / resident':>15}",
    ]
    for row in rows:
        t = row.seconds
        lines.append(
            f"B={row.batch_size:<6}{t[RESIDENT] * 1e6:>14,.1f} us{t[HOST] * 1e6:>15,.1f} us"
            f"{t[PYTHON] * 1e6:>19,.1f} us{t[HOST] / t[RESIDENT]:>16.2f}x"
            f"{t[PYTHON] / t[RESIDENT]:>14.2f}x"
        )
    lines.append(
        "Ratios above 1: the device-resident buffer delivers faster. The host C++ buffer's "
        "copy goes through pinned memory, asynchronously (on cpu: no copy)."
    )
    return "\n".join(lines)
