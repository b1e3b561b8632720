"""`PyReplayBuffer`: the replay buffer as DQN teaching material writes it.

Kept on purpose, and kept plain: a deque of transition tuples, each holding full copies of the
stacked obs and next_obs, sampled with numpy and stacked at sample time. It is the correctness
oracle for `ReplayBuffer` and the baseline its benchmarks compare against. Do not optimize it.
"""

from __future__ import annotations

import itertools
import sys
from collections import deque
from typing import Any, Sequence

import numpy as np
import torch

from pydqn import _args
from pydqn.batch import Batch


class PyReplayBuffer:
    """Same constructor, ``add``, ``sample``, ``get`` and slot numbering as `pydqn.ReplayBuffer`,
    n-step windows included (found by scanning the deque for the same env's next transitions)."""

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        obs_dtype: torch.dtype = torch.uint8,
        frame_stack: int = 1,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        n_step: int = 1,
        gamma: float = 0.99,
    ) -> None:
        args = _args.check_buffer_args(capacity, obs_shape, obs_dtype, frame_stack, num_envs,
                                       device, seed, n_step, gamma)
        self.capacity, self.obs_shape, self.device = args.capacity, args.obs_shape, args.device
        self.n_step, self.gamma = args.n_step, np.float32(args.gamma)
        self.buffer: deque = deque(maxlen=self.capacity)
        self.rng = np.random.default_rng(args.seed)
        self.added = 0  # transitions ever added; transition t lives in slot t % capacity

    def add(self, obs: Any, action: Any, reward: Any, next_obs: Any, terminated: Any,
            truncated: Any, env_ids: Sequence[int] | None = None) -> torch.Tensor:
        obs, next_obs = _to_numpy(obs), _to_numpy(next_obs)
        action, reward = _to_numpy(action), _to_numpy(reward)
        terminated, truncated = _to_numpy(terminated), _to_numpy(truncated)
        # Env streams matter to n-step windows only; one-step transitions skip the bookkeeping.
        envs = ([None] * len(obs) if self.n_step == 1 else
                range(len(obs)) if env_ids is None else [int(e) for e in _to_numpy(env_ids)])
        slots = []
        for i, env in enumerate(envs):
            self.buffer.append((
                obs[i].copy(),
                int(action[i]),
                np.float32(reward[i]),
                next_obs[i].copy(),
                bool(terminated[i]),
                bool(truncated[i]),
                env,
            ))
            slots.append(self.added % self.capacity)
            self.added += 1
        return torch.tensor(slots, dtype=torch.int64)

    def sample(self, batch_size: int) -> Batch:
        if self.n_step == 1:
            positions = self.rng.choice(len(self.buffer), size=batch_size, replace=True)
        else:  # only transitions whose n-step window is complete
            complete = [p for p in range(len(self.buffer)) if self._window(p) is not None]
            positions = self.rng.choice(complete, size=batch_size, replace=True)
        return self._batch(positions)

    def get(self, indices: Sequence[int] | torch.Tensor) -> Batch:
        oldest = self.added - len(self.buffer)
        positions = [(int(slot) - oldest) % self.capacity for slot in _to_numpy(indices).reshape(-1)]
        for i, p in enumerate(positions):
            if self._window(p) is None:
                raise ValueError(f"indices: slot {(oldest + p) % self.capacity} at position {i} holds a "
                                 f"transition whose {self.n_step}-step window is not complete yet")
        return self._batch(positions)

    def __len__(self) -> int:
        return len(self.buffer)

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored transitions: arrays, tuples and Python scalars."""
        return sum(sys.getsizeof(t) + sum(sys.getsizeof(x) for x in t) for t in self.buffer)

    def _window(self, position: int) -> list[tuple] | None:
        """The transitions of the n-step window that starts at `position` (the same env's next
        ones, up to n or the episode's end), or None while it is still open."""
        first = self.buffer[position]
        window = [first]
        ended = lambda: len(window) == self.n_step or window[-1][4] or window[-1][5]  # noqa: E731
        if self.n_step == 1:
            return window
        for later in itertools.islice(self.buffer, position + 1, None):
            if ended():
                break
            if later[6] == first[6]:
                window.append(later)
        return window if ended() else None

    def _batch(self, positions: Sequence[int]) -> Batch:
        rows = []
        for p in positions:
            window = self._window(p)
            reward, discount = window[-1][2], self.gamma
            for transition in reversed(window[:-1]):  # sum_j gamma^j r_j, float32, from the end
                reward = transition[2] + self.gamma * reward
                discount = discount * self.gamma
            last = window[-1]
            rows.append((window[0][0], window[0][1], reward, last[3], last[4], last[5], discount))
        obs, action, reward, next_obs, terminated, truncated, discount = zip(*rows)
        oldest = self.added - len(self.buffer)
        indices = [(oldest + p) % self.capacity for p in positions]
        return Batch(
            obs=torch.as_tensor(np.stack(obs)).to(self.device),
            action=torch.tensor(action, dtype=torch.int64, device=self.device),
            reward=torch.tensor(np.array(reward, dtype=np.float32), device=self.device),
            next_obs=torch.as_tensor(np.stack(next_obs)).to(self.device),
            terminated=torch.tensor(terminated, dtype=torch.bool, device=self.device),
            truncated=torch.tensor(truncated, dtype=torch.bool, device=self.device),
            discount=torch.tensor(np.array(discount, dtype=np.float32), device=self.device),
            indices=torch.tensor(indices, dtype=torch.int64, device=self.device),
        )


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
