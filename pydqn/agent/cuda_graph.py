"""The learner's update step captured in a CUDA graph."""

from __future__ import annotations

from collections.abc import Callable

import torch

from pydqn.replay.batch import Batch

WARMUP_STEPS = 3  # graph capture needs the kernels and the optimizer state set up beforehand


class CapturedStep:
    """``step(batch)`` captured once in a CUDA graph, then replayed for every batch.

    ``step`` runs the forward passes, target, loss, backward pass, clipping and a capturable
    optimizer's step on device tensors and returns tensors; it must not zero the gradients (the
    graph owns them). Capture needs warm-up steps; they run on the first batch and are then undone
    (parameters and optimizer state restored in place), so capturing changes nothing in training.
    """

    def __init__(
        self,
        step: Callable[[Batch], dict[str, torch.Tensor]],
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        example: Batch,
    ) -> None:
        self.static = Batch(*(t.clone() for t in example))
        params = list(model.parameters())
        saved_params = [p.detach().clone() for p in params]
        had_state = {
            p: {k: v.clone() if torch.is_tensor(v) else v for k, v in optimizer.state[p].items()}
            for p in params
            if optimizer.state.get(p)
        }
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                optimizer.zero_grad(set_to_none=True)
                step(self.static)
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():
            for p, saved in zip(params, saved_params, strict=True):
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
        # Thread-local: the async trainer's actor thread goes on acting on the GPU while the
        # learner thread captures (on a stream of its own, which the actor's never waits for);
        # only the capturing thread's own unsafe calls would break the capture.
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.outputs = step(self.static)

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Replay on ``batch`` (device tensors of the captured shapes); the outputs are copies."""
        for static, t in zip(self.static, batch, strict=True):
            static.copy_(t, non_blocking=True)
        self.graph.replay()
        return {name: t.clone() for name, t in self.outputs.items()}
