"""Where pydqn computes: how a device name given by a user becomes the ``torch.device`` pydqn
uses, and how many CPU threads torch gets.

Every layer (the replay buffers, the learner, the trainers, the benchmarks) resolves devices here,
so "auto", a bare "cuda" and a missing GPU mean the same everywhere.
"""

from __future__ import annotations

import os
from typing import Any

import torch


def resolve_device(device: Any, *, allow_cuda: bool = True, name: str = "device") -> torch.device:
    """The ``torch.device`` for ``device``: ``"auto"`` (CUDA when torch sees a GPU, else CPU),
    ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, or a ``torch.device``.

    A CUDA device comes back with its index (``cuda`` -> ``cuda:0`` on the current device), as the
    tensors made there report it, so that comparing a tensor's device with it is exact.

    Raises ValueError naming ``name``: an unparsable device, a device type other than CPU/CUDA,
    CUDA when ``allow_cuda`` is False (a host-resident buffer), no CUDA device visible, or an
    index beyond the devices torch sees.
    """
    if device == "auto":
        device = "cuda" if allow_cuda and torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (TypeError, RuntimeError):
        raise ValueError(
            f"{name}: expected 'cpu' or a torch.device such as 'cuda:0', got {device!r}"
        ) from None
    if device.type == "cpu":
        return device
    if device.type != "cuda" or not allow_cuda:
        if allow_cuda:
            raise ValueError(f"{name}: expected 'cpu' or 'cuda', got {name}={str(device)!r}")
        raise ValueError(
            f"{name}: expected 'cpu' (this buffer is host-resident), got {name}={str(device)!r}; "
            "sample on the CPU and move batches with .to(device)"
        )
    if not torch.cuda.is_available():
        raise ValueError(
            f"{name}: {str(device)!r} was asked for, but torch sees no CUDA device "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda})"
        )
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise ValueError(
            f"{name}: {str(device)!r} does not exist; torch sees {torch.cuda.device_count()} CUDA device(s)"
        )
    return torch.device("cuda", index)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def torch_threads(requested: int) -> int:
    """The CPU threads torch gets in a training run: ``requested``, or for 0 one per core this
    process may use (torch's own default counts the machine's cores, ignoring an affinity mask or
    a container's CPU set). Measured on 2 cores (README, "Training threads"): 2 threads beat 1 for
    the Nature CNN, sync (1.78x) and async (1.22x), and for CartPole's MLP (1.22x): the update,
    which dominates, parallelizes better than the env threads lose."""
    return requested or usable_cores()
