"""The batch of transitions that replay buffers return."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """Transitions read from a replay buffer, as tensors on the buffer's device.

    Shapes: ``obs`` and ``next_obs`` are ``(B, *obs_shape)`` of the buffer's ``obs_dtype``; the
    other fields are ``(B,)``: ``action`` int64, ``reward`` float32, ``terminated`` and
    ``truncated`` bool, ``discount`` float32, ``indices`` int64 (the slots read),
    ``transition_ids`` int64 (each transition's number in the order transitions were added: it
    names the transition for as long as it is stored, its slot is ``transition_id % capacity``)
    and ``weights`` float32 (importance-sampling weights of prioritized sampling; 1 otherwise).

    With ``n_step = n`` a transition at t is its n-step window t..t+m-1 (m = n, or fewer when the
    episode ended sooner): ``reward`` is ``sum_j gamma^j r_{t+j}``, ``next_obs`` the observation
    after step t+m-1, ``terminated``/``truncated`` those of step t+m-1 and ``discount`` gamma^m,
    so the TD target is ``reward + discount * (1 - terminated) * max_a Q(next_obs, a)``.
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    discount: torch.Tensor
    indices: torch.Tensor
    transition_ids: torch.Tensor
    weights: torch.Tensor
