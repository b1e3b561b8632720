"""`ReplayLike`: what every pydqn replay buffer offers, so code written against one takes the other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from pydqn.replay.batch import Batch

# What the buffers take for slot or transition numbers and for priorities: Python sequences, numpy
# arrays, or tensors on any device.
IntsLike = Sequence[int] | np.ndarray | torch.Tensor
RealsLike = Sequence[float] | np.ndarray | torch.Tensor


@runtime_checkable
class ReplayLike(Protocol):
    """The replay-buffer interface shared by `ReplayBuffer` and `PyReplayBuffer`.

    The training loop, the benchmarks and the tests use buffers only through it. Slots are
    numbered alike (transition ``t`` lives in slot ``t % capacity``), batches are `Batch` tuples
    on ``device``, and a buffer built with ``prioritized=True`` takes ``beta`` and
    ``update_priorities``.
    """

    obs_shape: tuple[int, ...]
    device: torch.device
    n_step: int
    prioritized: bool

    @property
    def capacity(self) -> int: ...

    @property
    def nbytes(self) -> int: ...

    def __len__(self) -> int: ...

    def add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
        env_ids: IntsLike | None = None,
    ) -> torch.Tensor: ...

    def end_episodes(self, env_ids: IntsLike | None = None) -> int: ...

    def continues(self, obs: Any, env_ids: IntsLike | None = None) -> torch.Tensor: ...

    def sample(self, batch_size: int, *, beta: float | None = None) -> Batch: ...

    def get(self, indices: IntsLike) -> Batch: ...

    def update_priorities(self, transition_ids: IntsLike, priorities: RealsLike) -> int: ...
