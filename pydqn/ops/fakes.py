"""Fake (meta) implementations of the fused ops, for ``torch.compile`` and CUDA graph capture.

Each checks what its kernel's C++ contract (``csrc/ops/<op>.cpp``) checks, with the same error
types (``torch._check_value``: ValueError, ``torch._check_type``: TypeError), so a traced program
fails where the eager one would, and then returns empty tensors of the output shapes.
"""

from __future__ import annotations

import torch

from pydqn.ops.loss_kind import LOSS_KINDS


def _check_rows(tensor: torch.Tensor, name: str, rows: int) -> None:
    torch._check_value(
        tensor.dim() == 1 and tensor.shape[0] == rows,
        lambda: f"{name}: expected shape ({rows},), got {tuple(tensor.shape)}",
    )


def _check_same_device(tensor: torch.Tensor, name: str, like: torch.Tensor, like_name: str) -> None:
    torch._check_value(
        tensor.device == like.device,
        lambda: f"{name}: expected a tensor on {like.device} like {like_name}, got {tensor.device}",
    )


def _check_like(tensor: torch.Tensor, name: str, like: torch.Tensor, like_name: str) -> None:
    torch._check_type(
        tensor.dtype == like.dtype,
        lambda: f"{name}: expected {like.dtype} like {like_name}, got {tensor.dtype}",
    )
    _check_same_device(tensor, name, like, like_name)


@torch.library.register_fake("pydqn::stack_gather")
def _stack_gather(frames: torch.Tensor, frame_index: torch.Tensor) -> torch.Tensor:
    torch._check_value(
        frames.dim() >= 1, lambda: "frames: expected shape (frames, *frame_shape), got a scalar"
    )
    torch._check_type(
        frame_index.dtype == torch.int64,
        lambda: f"frame_index: expected torch.int64, got {frame_index.dtype}",
    )
    torch._check_value(
        frame_index.dim() == 2, lambda: f"frame_index: expected shape (B, k), got {tuple(frame_index.shape)}"
    )
    _check_same_device(frame_index, "frame_index", frames, "frames")
    return frames.new_empty((*frame_index.shape, *frames.shape[1:]))


@torch.library.register_fake("pydqn::td_target")
def _td_target(
    next_q_target: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor,
    terminated: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
) -> torch.Tensor:
    torch._check_value(
        next_q_target.dim() == 2 and next_q_target.shape[1] >= 1,
        lambda: f"next_q_target: expected shape (B, A) with A >= 1, got {tuple(next_q_target.shape)}",
    )
    torch._check_type(
        next_q_target.dtype.is_floating_point,
        lambda: f"next_q_target: expected a floating point dtype, got {next_q_target.dtype}",
    )
    batch = next_q_target.shape[0]
    _check_rows(reward, "reward", batch)
    _check_like(reward, "reward", next_q_target, "next_q_target")
    torch._check_value(
        discount.numel() == 1 or (discount.dim() == 1 and discount.shape[0] == batch),
        lambda: f"discount: expected one value or shape ({batch},), got {tuple(discount.shape)}",
    )
    _check_like(discount, "discount", next_q_target, "next_q_target")
    _check_rows(terminated, "terminated", batch)
    torch._check_type(
        terminated.dtype == torch.bool, lambda: f"terminated: expected torch.bool, got {terminated.dtype}"
    )
    _check_same_device(terminated, "terminated", next_q_target, "next_q_target")
    if next_q_online is not None:
        torch._check_value(
            next_q_online.shape == next_q_target.shape,
            lambda: (
                f"next_q_online: expected shape {tuple(next_q_target.shape)} like next_q_target, "
                f"got {tuple(next_q_online.shape)}"
            ),
        )
        _check_like(next_q_online, "next_q_online", next_q_target, "next_q_target")
    return next_q_target.new_empty((batch,))


def _check_q_td_loss_args(
    q: torch.Tensor,
    action: torch.Tensor,
    target: torch.Tensor | None,
    weights: torch.Tensor | None,
    kind: str,
) -> None:
    torch._check_value(kind in LOSS_KINDS, lambda: f"kind: expected 'huber' or 'mse', got {kind!r}")
    torch._check_value(
        q.dim() == 2 and q.shape[0] >= 1 and q.shape[1] >= 1,
        lambda: f"q: expected shape (B, A) with B, A >= 1, got {tuple(q.shape)}",
    )
    torch._check_type(q.dtype.is_floating_point, lambda: f"q: expected a floating point dtype, got {q.dtype}")
    batch = q.shape[0]
    _check_rows(action, "action", batch)
    torch._check_type(
        action.dtype == torch.int64, lambda: f"action: expected torch.int64, got {action.dtype}"
    )
    _check_same_device(action, "action", q, "q")
    for name, tensor in (("target", target), ("weights", weights)):
        if tensor is not None:
            _check_rows(tensor, name, batch)
            _check_like(tensor, name, q, "q")


@torch.library.register_fake("pydqn::q_td_loss")
def _q_td_loss(
    q: torch.Tensor,
    action: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    kind: str = "huber",
) -> tuple[torch.Tensor, torch.Tensor]:
    _check_q_td_loss_args(q, action, target, weights, kind)
    return q.new_empty(()), q.new_empty((q.shape[0],))


@torch.library.register_fake("pydqn::q_td_loss_backward")
def _q_td_loss_backward(
    grad_loss: torch.Tensor,
    q: torch.Tensor,
    action: torch.Tensor,
    td_error: torch.Tensor,
    weights: torch.Tensor | None,
    kind: str,
) -> torch.Tensor:
    _check_q_td_loss_args(q, action, td_error, weights, kind)
    torch._check_value(
        grad_loss.numel() == 1, lambda: f"grad_loss: expected one value, got shape {tuple(grad_loss.shape)}"
    )
    return torch.empty_like(q)
