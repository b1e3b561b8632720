"""The learner's update step captured in a CUDA graph, and pinned staging for batches sent to a GPU."""

from __future__ import annotations

from typing import Callable

import torch

from pydqn.batch import Batch

WARMUP_STEPS = 3  # graph capture needs the kernels and the optimizer state set up beforehand


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
        if self._pinned[i] is None or self._pinned[i].obs.shape != batch.obs.shape:
            self._pinned[i] = Batch(*(torch.empty_like(t, device="cpu").pin_memory() for t in batch))
        self._copied[i].synchronize()
        pinned = self._pinned[i]
        for staged, t in zip(pinned, batch):
            staged.copy_(t)
        if out is None:
            out = Batch(*(t.to(self.device, non_blocking=True) for t in pinned))
        else:
            for target, staged in zip(out, pinned):
                target.copy_(staged, non_blocking=True)
        self._copied[i].record()
        return out


class CapturedStep:
    """``step(batch)`` captured once in a CUDA graph, then replayed for every batch.

    ``step`` runs the forward passes, target, loss, backward pass, clipping and a capturable
    optimizer's step on device tensors and returns tensors; it must not zero the gradients (the
    graph owns them). Capture needs warm-up steps; they run on the first batch and are then undone
    (parameters and optimizer state restored in place), so capturing changes nothing in training.
    """

    def __init__(self, step: Callable[[Batch], dict[str, torch.Tensor]], model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, example: Batch) -> None:
        self.static = Batch(*(t.clone() for t in example))
        params = list(model.parameters())
        saved_params = [p.detach().clone() for p in params]
        had_state = {p: {k: v.clone() if torch.is_tensor(v) else v for k, v in optimizer.state[p].items()}
                     for p in params if optimizer.state.get(p)}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                optimizer.zero_grad(set_to_none=True)
                step(self.static)
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():
            for p, saved in zip(params, saved_params):
                p.copy_(saved)
            for p in params:
                for key, value in optimizer.state.get(p, {}).items():
                    if not torch.is_tensor(value):
                        continue
                    if p in had_state:
                        value.copy_(had_state[p][key])
                    else:  # the warm-up created it: back to a fresh optimizer's zeros
                        value.zero_()
        optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = step(self.static)

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Replay on ``batch`` (device tensors of the captured shapes); the outputs are copies."""
        for static, t in zip(self.static, batch):
            static.copy_(t, non_blocking=True)
        self.graph.replay()
        return {name: t.clone() for name, t in self.outputs.items()}
