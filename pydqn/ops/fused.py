"""The typed Python entry points of the fused ops ``torch.ops.pydqn.*`` (kernels in csrc/ops/)."""

from __future__ import annotations

import torch

from pydqn._extension import load_extension
from pydqn.ops.loss_kind import LossKind

load_extension()  # registers the ops (csrc/ops/)


def stack_gather(frames: torch.Tensor, frame_index: torch.Tensor) -> torch.Tensor:
    """Stacks of frames: ``out[b, j] = frames[frame_index[b, j]]``.

    ``frames`` is ``(N, *frame_shape)`` of any dtype, ``frame_index`` int64 ``(B, k)`` on the same
    device; the result is ``(B, k, *frame_shape)``. Indices out of ``[0, N)`` raise IndexError on
    CPU (a device-side assert on CUDA, which cannot check without synchronizing).
    """
    _check_tensors(frames=frames, frame_index=frame_index)
    return torch.ops.pydqn.stack_gather.default(frames, frame_index)


def td_target(
    next_q_target: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor | float,
    terminated: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
) -> torch.Tensor:
    """``reward + discount * (1 - terminated) * Q_target(s', a*)``, shape ``(B,)``, without grad.

    ``a*`` is ``argmax_a Q_online(s', a)`` when ``next_q_online`` is given (Double DQN), else
    ``argmax_a Q_target(s', a)`` (the max). Shapes: Q values ``(B, A)``; ``reward`` ``(B,)`` and
    ``discount`` (a float, or ``(B,)``: gamma^n for n-step returns) of the Q values' dtype;
    ``terminated`` bool ``(B,)``. Truncated transitions must pass ``terminated=False``: they
    bootstrap.
    """
    _check_tensors(next_q_target=next_q_target, reward=reward, terminated=terminated)
    if not isinstance(discount, torch.Tensor):
        # A fill on the device, not a copy from the host: CUDA graphs capture it.
        discount = torch.full((), float(discount), dtype=next_q_target.dtype, device=next_q_target.device)
    if next_q_online is not None:
        _check_tensors(next_q_online=next_q_online)
        next_q_online = next_q_online.detach()
    return torch.ops.pydqn.td_target.default(
        next_q_target.detach(), reward.detach(), discount.detach(), terminated, next_q_online
    )


def q_td_loss(
    q: torch.Tensor,
    action: torch.Tensor,
    target: torch.Tensor,
    kind: LossKind = "huber",
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss between ``Q(s, action)`` and ``target``, and the per-sample TD errors.

    ``q`` is ``(B, A)``, ``action`` int64 ``(B,)``, ``target`` and the optional ``weights``
    (importance-sampling weights of prioritized replay) ``(B,)`` of q's dtype. The loss is
    ``mean(weights * l(Q(s, a) - target))`` with ``l`` the Huber loss (delta 1, the DQN paper's
    clipped error) or the squared error (``kind="mse"``). The TD errors ``Q(s, a) - target`` are
    returned without grad (prioritized replay reads them). Gradients flow to ``q`` (only at the
    taken actions) and to ``target``.
    """
    _check_tensors(q=q, action=action, target=target)
    if weights is not None:
        _check_tensors(weights=weights)
    return torch.ops.pydqn.q_td_loss.default(q, action, target, weights, kind)


def _check_tensors(**tensors: object) -> None:
    for name, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
