"""The batch of transitions that replay buffers return."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """Transitions read from a replay buffer, as tensors on the buffer's device.

    Shapes: ``obs`` and ``next_obs`` are ``(B, *obs_shape)`` of the buffer's ``obs_dtype``; the
    other fields are ``(B,)``: ``action`` int64, ``reward`` float32, ``terminated`` and
    ``truncated`` bool, ``indices`` int64 (the slots read).
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    indices: torch.Tensor
