"""Batches of Atari stacks delivered on a device: the device-resident buffer (one gather kernel)
against the host C++ buffer plus a pinned asynchronous copy and the pure-Python buffer plus
``.to(device)``; each call waits for the device. On CPU the first is the CUDA path's CPU twin.

Capacity: PYDQN_DEVICE_CAPACITY (default 1,000,000; the Python buffer then needs ~60 GB of host
memory), PYDQN_PYTHON_CAPACITY for the Python buffer's alone (default: the same).
Run: pytest benchmarks/test_device_sample_benchmark.py --benchmark-group-by=group
"""

import os
from typing import Any

import pytest
import torch
from bench_support import DEVICES

from pydqn.bench.device import HOST, NUM_ENVS, PYTHON, RESIDENT, buffer_makers, delivery
from pydqn.bench.replay import AtariStreams, fill

CAPACITY = int(os.environ.get("PYDQN_DEVICE_CAPACITY", "1000000"))
PYTHON_CAPACITY = int(os.environ.get("PYDQN_PYTHON_CAPACITY", "0")) or None


@pytest.fixture(scope="module", params=DEVICES)
def filled(request):
    """One buffer per variant, filled past capacity (built as its first test needs it)."""
    device = request.param
    makers = buffer_makers(torch.device(device), CAPACITY, PYTHON_CAPACITY)
    buffers: dict[str, Any] = {}

    def buffer(name):
        if name not in buffers:
            buffers.clear()  # one full buffer in memory at a time
            buffers[name] = makers[name]()
            fill(buffers[name], AtariStreams(NUM_ENVS), buffers[name].capacity + 1000)
        return buffers[name]

    return device, buffer


@pytest.mark.parametrize("name", [RESIDENT, HOST, PYTHON])
@pytest.mark.parametrize("batch_size", [32, 256])
def test_deliver_batch(benchmark, filled, name, batch_size):
    device, buffer = filled
    deliver = delivery(torch.device(device))[name]
    benchmark.group = f"batch on {device}, B={batch_size}"
    target = buffer(name)
    deliver(target, batch_size)  # warm-up
    benchmark(deliver, target, batch_size)
