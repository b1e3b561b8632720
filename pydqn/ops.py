"""pydqn's tensor operators, registered with PyTorch as ``torch.ops.pydqn.*`` for CPU and CUDA.

The training loop computes its target and loss only through `td_target` and `q_td_loss`. Each op
has a fake (shape-only) implementation, so ``torch.compile`` and CUDA graph capture accept it, and
`q_td_loss` has an autograd formula whose backward is an op too (a scatter into the taken actions).
"""

from __future__ import annotations

from typing import Literal

import torch

from pydqn._extension import load_extension

load_extension()  # registers the ops (csrc/ops/)

LossKind = Literal["huber", "mse"]


def stack_gather(frames: torch.Tensor, frame_index: torch.Tensor) -> torch.Tensor:
    """Stacks of frames: ``out[b, j] = frames[frame_index[b, j]]``.

    ``frames`` is ``(N, *frame_shape)`` of any dtype, ``frame_index`` int64 ``(B, k)`` on the same
    device; the result is ``(B, k, *frame_shape)``. Indices out of ``[0, N)`` raise IndexError on
    CPU (a device-side assert on CUDA, which cannot check without synchronizing).
    """
    _check_tensors(frames=frames, frame_index=frame_index)
    return torch.ops.pydqn.stack_gather.default(frames, frame_index)


def td_target(next_q_target: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor | float,
              terminated: torch.Tensor, next_q_online: torch.Tensor | None = None) -> torch.Tensor:
    """``reward + discount * (1 - terminated) * Q_target(s', a*)``, shape ``(B,)``, without grad.

    ``a*`` is ``argmax_a Q_online(s', a)`` when ``next_q_online`` is given (Double DQN), else
    ``argmax_a Q_target(s', a)`` (the max). Shapes: Q values ``(B, A)``; ``reward`` ``(B,)`` and
    ``discount`` (a float, or ``(B,)``: gamma^n for n-step returns) of the Q values' dtype;
    ``terminated`` bool ``(B,)``. Truncated transitions must pass ``terminated=False``: they
    bootstrap.
    """
    _check_tensors(next_q_target=next_q_target, reward=reward, terminated=terminated)
    if not isinstance(discount, torch.Tensor):
        discount = torch.tensor(float(discount), dtype=next_q_target.dtype, device=next_q_target.device)
    if next_q_online is not None:
        _check_tensors(next_q_online=next_q_online)
        next_q_online = next_q_online.detach()
    return torch.ops.pydqn.td_target.default(next_q_target.detach(), reward.detach(),
                                             discount.detach(), terminated, next_q_online)


def q_td_loss(q: torch.Tensor, action: torch.Tensor, target: torch.Tensor,
              kind: LossKind = "huber", weights: torch.Tensor | None = None
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


# ---- fake (shape-only) implementations, for torch.compile and CUDA graphs ------------------------

@torch.library.register_fake("pydqn::stack_gather")
def _(frames, frame_index):
    return frames.new_empty((*frame_index.shape, *frames.shape[1:]))


@torch.library.register_fake("pydqn::td_target")
def _(next_q_target, reward, discount, terminated, next_q_online=None):
    return next_q_target.new_empty((next_q_target.shape[0],))


@torch.library.register_fake("pydqn::q_td_loss")
def _(q, action, target, weights=None, kind="huber"):
    return q.new_empty(()), q.new_empty((q.shape[0],))


@torch.library.register_fake("pydqn::q_td_loss_backward")
def _(grad_loss, q, action, td_error, weights, kind):
    return torch.empty_like(q)


# ---- autograd ----------------------------------------------------------------------------------

def _setup_q_td_loss(ctx, inputs, output) -> None:
    q, action, _target, weights, kind = inputs
    _loss, td_error = output
    ctx.save_for_backward(q, action, td_error, weights)
    ctx.kind = kind
    ctx.mark_non_differentiable(td_error)


def _q_td_loss_backward(ctx, grad_loss, _grad_td_error):
    q, action, td_error, weights = ctx.saved_tensors
    grad_q = torch.ops.pydqn.q_td_loss_backward.default(grad_loss, q, action, td_error, weights,
                                                        ctx.kind)
    grad_target = None
    if ctx.needs_input_grad[2]:  # d td_error / d target = -1
        grad_target = -grad_q.gather(1, action.unsqueeze(1)).squeeze(1)
    return grad_q, None, grad_target, None, None


torch.library.register_autograd("pydqn::q_td_loss", _q_td_loss_backward,
                                setup_context=_setup_q_td_loss)
