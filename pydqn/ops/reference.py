"""Composite PyTorch versions of `pydqn.ops`: the same formulas as plain tensor operations.

Kept on purpose, like `PyReplayBuffer`: the tests compare the fused kernels against them (values
and gradients), and the benchmarks time the update step with each."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pydqn.ops.loss_kind import LossKind


def td_target(
    next_q_target: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor | float,
    terminated: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
) -> torch.Tensor:
    """``reward + discount * (1 - terminated) * Q_target(s', a*)``, shape ``(B,)``, without grad.

    ``a*`` is ``argmax_a Q_online(s', a)`` when ``next_q_online`` is given (Double DQN), else
    ``argmax_a Q_target(s', a)`` (the max). Shapes: Q values ``(B, A)``; ``reward`` and
    ``terminated`` (bool) ``(B,)``; ``discount`` a float or ``(B,)`` (gamma^n for n-step returns).
    Truncated transitions must pass ``terminated=False``: they bootstrap.
    """
    _check_batch("next_q_target", next_q_target, dims=2)
    batch = next_q_target.shape[0]
    _check_batch("reward", reward, dims=1, rows=batch)
    _check_batch("terminated", terminated, dims=1, rows=batch)
    if terminated.dtype != torch.bool:
        raise TypeError(f"terminated: expected torch.bool, got {terminated.dtype}")
    with torch.no_grad():
        if next_q_online is None:
            bootstrap = next_q_target.max(dim=1).values
        else:
            if next_q_online.shape != next_q_target.shape:
                raise ValueError(
                    f"next_q_online: expected shape {tuple(next_q_target.shape)} like "
                    f"next_q_target, got {tuple(next_q_online.shape)}"
                )
            best = next_q_online.argmax(dim=1, keepdim=True)
            bootstrap = next_q_target.gather(1, best).squeeze(1)
        return reward + discount * (~terminated) * bootstrap


def q_td_loss(
    q: torch.Tensor,
    action: torch.Tensor,
    target: torch.Tensor,
    kind: LossKind = "huber",
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean loss between ``Q(s, action)`` and ``target``, and the per-sample TD errors.

    ``q`` is ``(B, A)``, ``action`` int64 ``(B,)``, ``target`` ``(B,)``. ``kind`` is ``"huber"``
    (delta 1, the DQN paper's clipped error) or ``"mse"``. TD errors are ``Q(s, a) - target``,
    detached (prioritized replay reads them).
    """
    _check_batch("q", q, dims=2)
    batch = q.shape[0]
    _check_batch("action", action, dims=1, rows=batch)
    _check_batch("target", target, dims=1, rows=batch)
    if action.dtype != torch.int64:
        raise TypeError(f"action: expected torch.int64, got {action.dtype}")
    taken = q.gather(1, action.unsqueeze(1)).squeeze(1)
    if kind == "huber":
        losses = F.huber_loss(taken, target, delta=1.0, reduction="none")
    elif kind == "mse":
        losses = F.mse_loss(taken, target, reduction="none")
    else:
        raise ValueError(f"kind: expected 'huber' or 'mse', got {kind!r}")
    if weights is not None:
        losses = weights * losses
    return losses.mean(), (taken - target).detach()


def stack_gather(frames: torch.Tensor, frame_index: torch.Tensor) -> torch.Tensor:
    return frames[frame_index]


def _check_batch(name: str, tensor: torch.Tensor, dims: int, rows: int | None = None) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != dims or (rows is not None and tensor.shape[0] != rows):
        expected = (f"({rows}, A)" if dims == 2 else f"({rows},)") if rows is not None else f"{dims}-D"
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(tensor.shape)}")
