"""Type stub of pydqn's private C++ extension (csrc/bindings/); use the typed wrappers instead."""

from collections.abc import Sequence
from typing import Any

import torch

TORCH_VERSION: str
WITH_CUDA: bool
REPLAY_STATE_KEYS: tuple[str, ...]
# The buffer's size limits (inclusive maxima) by constructor argument: frame_stack, num_envs,
# n_step, capacity; and added, the transitions a buffer numbers over its life (a loaded state's too).
LIMITS: dict[str, int]

_BatchTuple = tuple[
    torch.Tensor,  # obs
    torch.Tensor,  # action
    torch.Tensor,  # reward
    torch.Tensor,  # next_obs
    torch.Tensor,  # terminated
    torch.Tensor,  # truncated
    torch.Tensor,  # discount
    torch.Tensor,  # indices
    torch.Tensor,  # transition_ids
    torch.Tensor,  # weights
]

class ReplayBuffer:
    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        obs_dtype: torch.dtype,
        frame_stack: int,
        num_envs: int,
        seed: int | None,
        n_step: int,
        gamma: float,
        prioritized: bool,
        alpha: float,
        sample_device: torch.device | None = None,
    ) -> None: ...
    def add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
        env_ids: Any = None,
    ) -> torch.Tensor: ...
    def end_episodes(self, env_ids: Any = None) -> int: ...
    def continues(self, obs: Any, env_ids: Any = None) -> torch.Tensor: ...
    def sample(self, batch_size: int, beta: float | None = None) -> _BatchTuple: ...
    def sample_into(self, out: Sequence[torch.Tensor], beta: float | None = None) -> None: ...
    def update_priorities(self, transition_ids: torch.Tensor, priorities: torch.Tensor) -> int: ...
    def get(self, indices: torch.Tensor) -> _BatchTuple: ...
    def save_state(self) -> dict[str, Any]: ...
    def load_state(self, state: dict[str, Any]) -> None: ...
    def __len__(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def device_nbytes(self) -> int: ...

class _SegmentTree:
    def __init__(self, capacity: int) -> None: ...
    def set(self, index: int, value: float) -> None: ...
    def get(self, index: int) -> float: ...
    def find_prefix(self, mass: float) -> int: ...
    @property
    def root(self) -> float: ...
    @property
    def leaves(self) -> int: ...

class SumTree(_SegmentTree): ...
class MinTree(_SegmentTree): ...
