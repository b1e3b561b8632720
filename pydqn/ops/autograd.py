"""The autograd formula of ``pydqn::q_td_loss``: its backward is an op too (a scatter of
d loss / d q into the taken actions), so compiled and graph-captured programs differentiate it."""

from __future__ import annotations

from typing import Any

import torch


def _setup_q_td_loss(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    q, action, _target, weights, kind = inputs
    _loss, td_error = output
    ctx.save_for_backward(q, action, td_error, weights)
    ctx.kind = kind
    ctx.mark_non_differentiable(td_error)


def _q_td_loss_backward(
    ctx: Any, grad_loss: torch.Tensor, _grad_td_error: torch.Tensor
) -> tuple[torch.Tensor, None, torch.Tensor | None, None, None]:
    q, action, td_error, weights = ctx.saved_tensors
    grad_q = torch.ops.pydqn.q_td_loss_backward.default(grad_loss, q, action, td_error, weights, ctx.kind)
    grad_target = None
    if ctx.needs_input_grad[2]:  # d td_error / d target = -1
        grad_target = -grad_q.gather(1, action.unsqueeze(1)).squeeze(1)
    return grad_q, None, grad_target, None, None


torch.library.register_autograd("pydqn::q_td_loss", _q_td_loss_backward, setup_context=_setup_q_td_loss)
