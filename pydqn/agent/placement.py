"""Where a batch lives: which device a run's replay buffer keeps its transitions on, and how a
sampled batch reaches the learner's device.

This is the one place that decides it. On a GPU the C++ buffer lives in device memory and samples
there, so a batch never crosses PCIe; a buffer that two threads use at once (the async trainer's
actor adds while its learner samples) stays on the host, because a device-resident buffer takes one
call at a time, and its batches reach the GPU through pinned memory.
"""

from __future__ import annotations

import torch

from pydqn.replay.batch import Batch


def replay_device(learner_device: torch.device, *, cpp_buffer: bool, shared_by_threads: bool) -> torch.device:
    """The device a run's replay buffer lives on, for a learner on ``learner_device``."""
    if learner_device.type == "cuda" and cpp_buffer and not shared_by_threads:
        return learner_device
    return torch.device("cpu")


class PinnedStaging:
    """Copies host batches to the device through page-locked memory, asynchronously.

    Two pinned batches alternate; each is refilled only after the copy that last read it has
    finished (its event), which is long done by then, so the host does not wait in practice.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._pinned: list[Batch | None] = [None, None]
        self._copied = [torch.cuda.Event(), torch.cuda.Event()]
        self._next = 0

    def to_device(self, batch: Batch, out: Batch | None = None) -> Batch:
        """``batch`` on the device (written into ``out`` when given)."""
        i, self._next = self._next, 1 - self._next
        pinned = self._pinned[i]
        if pinned is None or pinned.obs.shape != batch.obs.shape:
            pinned = self._pinned[i] = Batch(*(torch.empty_like(t, device="cpu").pin_memory() for t in batch))
        self._copied[i].synchronize()
        for staged, t in zip(pinned, batch, strict=True):
            staged.copy_(t)
        if out is None:
            out = Batch(*(t.to(self.device, non_blocking=True) for t in pinned))
        else:
            for target, staged in zip(out, pinned, strict=True):
                target.copy_(staged, non_blocking=True)
        self._copied[i].record(torch.cuda.current_stream(self.device))  # where the copies went
        return out


class BatchMover:
    """Brings batches to ``device``: as they are when they live there already (a device-resident
    buffer's), through `PinnedStaging` from the host to a GPU, else with ``.to``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._staging: PinnedStaging | None = None

    def __call__(self, batch: Batch) -> Batch:
        if batch.obs.device == self.device:
            return batch
        if self.device.type == "cuda":
            if self._staging is None:
                self._staging = PinnedStaging(self.device)
            return self._staging.to_device(batch)
        return Batch(*(t.to(self.device) for t in batch))
