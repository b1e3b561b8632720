"""`PyReplayBuffer`: the replay buffer as DQN teaching material writes it.

Kept on purpose, and kept plain: a deque of transition tuples, each holding full copies of the
stacked obs and next_obs, sampled with numpy and stacked at sample time. It is the correctness
oracle for `ReplayBuffer` and the baseline its benchmarks compare against. Do not optimize it.
"""

from __future__ import annotations

import itertools
import sys
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pydqn.replay import checks
from pydqn.replay.batch import Batch
from pydqn.replay.protocol import IntsLike, RealsLike
from pydqn.replay.py_segment_tree import MinSegmentTree, SumSegmentTree


class PyReplayBuffer:
    """Same constructor, ``add``, ``sample``, ``get``, ``update_priorities``, ``end_episodes``,
    ``continues`` and slot numbering as `pydqn.ReplayBuffer`, n-step windows included (found by
    scanning the deque for the same env's next transitions, up to the transition that ends the
    episode) and prioritized sampling (baselines' segment trees). Unlike it, ``add`` checks
    neither its arguments nor that episodes continue."""

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
        prioritized: bool = False,
        alpha: float = 0.6,
    ) -> None:
        args = checks.check_buffer_args(
            capacity,
            obs_shape,
            obs_dtype,
            frame_stack,
            num_envs,
            device,
            seed,
            n_step,
            gamma,
            prioritized,
            alpha,
        )
        self.capacity, self.obs_shape, self.device = args.capacity, args.obs_shape, args.device
        self.n_step, self.gamma = args.n_step, np.float32(args.gamma)
        self.num_envs = args.num_envs
        # Transitions: (obs, action, reward, next_obs, terminated, truncated, env, ends_episode).
        self.buffer: deque = deque(maxlen=self.capacity)
        # Per env stream: the next_obs its open episode continues from (None: no open episode),
        # and the id of its last transition.
        self.last_next_obs: list[np.ndarray | None] = [None] * self.num_envs
        self.last_added = [-1] * self.num_envs
        self.rng = np.random.default_rng(args.seed)
        self.added = 0  # transitions ever added; transition t lives in slot t % capacity
        self.prioritized, self.alpha = args.prioritized, args.alpha
        if self.prioritized:  # leaves hold p^alpha; 0 (inf) where a window is still open
            self.sums = SumSegmentTree(self.capacity)
            self.minima = MinSegmentTree(self.capacity)
            self.max_priority = 1.0
            self.open_windows: list[int] = []  # transition ids whose leaves wait for their window

    def add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
        env_ids: IntsLike | None = None,
    ) -> torch.Tensor:
        obs, next_obs = _to_numpy(obs), _to_numpy(next_obs)
        action, reward = _to_numpy(action), _to_numpy(reward)
        terminated, truncated = _to_numpy(terminated), _to_numpy(truncated)
        slots = []
        for i, env in enumerate(self._envs(len(obs), env_ids)):
            ends_episode = bool(terminated[i]) or bool(truncated[i])
            transition = (
                obs[i].copy(),
                int(action[i]),
                np.float32(reward[i]),
                next_obs[i].copy(),
                bool(terminated[i]),
                bool(truncated[i]),
                env,
                ends_episode,
            )
            self.buffer.append(transition)
            self.last_next_obs[env] = None if ends_episode else transition[3]
            self.last_added[env] = self.added
            slots.append(self.added % self.capacity)
            if self.prioritized:
                if self.n_step == 1:
                    self._set_leaf(self.added, self.max_priority**self.alpha)
                else:
                    self._set_leaf(self.added, 0.0)
                    self.open_windows.append(self.added)
            self.added += 1
            if self.prioritized and self.n_step > 1:
                self._give_completed_windows_the_max_priority()
        return torch.tensor(slots, dtype=torch.int64)

    def end_episodes(self, env_ids: IntsLike | None = None) -> int:
        """End the open episodes of `env_ids` without adding a transition: each one's last
        transition now ends its episode, so its n-step windows stop there."""
        ended = 0
        for env in self._envs(self.num_envs, env_ids):
            if self.last_next_obs[env] is None:
                continue  # no open episode
            self.last_next_obs[env] = None
            position = self.last_added[env] - (self.added - len(self.buffer))
            if position >= 0:  # still stored: mark it as its episode's last
                self.buffer[position] = (*self.buffer[position][:7], True)
            ended += 1
        if self.prioritized and self.n_step > 1:
            self._give_completed_windows_the_max_priority()
        return ended

    def continues(self, obs: Any, env_ids: IntsLike | None = None) -> torch.Tensor:
        """Per row: does its stream have an open episode whose last next_obs is this obs?"""
        obs = _to_numpy(obs)
        answers = []
        for i, env in enumerate(self._envs(len(obs), env_ids)):
            last = self.last_next_obs[env]
            answers.append(last is not None and obs[i].tobytes() == last.tobytes())
        return torch.tensor(answers, dtype=torch.bool)

    def _envs(self, rows: int, env_ids: IntsLike | None) -> list[int]:
        """The env stream of each row: `env_ids`, or every stream in order."""
        if env_ids is None:
            return list(range(rows))
        return [int(e) for e in _to_numpy(env_ids).reshape(-1)]

    def _set_leaf(self, transition_id: int, leaf: float) -> None:
        self.sums[transition_id % self.capacity] = leaf
        self.minima[transition_id % self.capacity] = leaf if leaf > 0 else float("inf")

    def _give_completed_windows_the_max_priority(self) -> None:
        oldest = self.added - len(self.buffer)
        still_open = []
        for transition_id in self.open_windows:
            if transition_id < oldest:
                continue  # overwritten
            if self._window(transition_id - oldest) is None:
                still_open.append(transition_id)
            else:
                self._set_leaf(transition_id, self.max_priority**self.alpha)
        self.open_windows = still_open

    def sample(self, batch_size: int, *, beta: float | None = None) -> Batch:
        beta = checks.check_beta(self.prioritized, beta)
        if beta is not None:  # prioritized
            return self._sample_proportional(batch_size, beta)
        if self.n_step == 1:
            positions = self.rng.choice(len(self.buffer), size=batch_size, replace=True)
        else:  # only transitions whose n-step window is complete
            complete = [p for p in range(len(self.buffer)) if self._window(p) is not None]
            positions = self.rng.choice(complete, size=batch_size, replace=True)
        return self._batch(positions)

    def _sample_proportional(self, batch_size: int, beta: float) -> Batch:
        """Stratified proportional sampling and weights, as baselines' PrioritizedReplayBuffer."""
        total = self.sums.root()
        if total <= 0:
            raise ValueError("cannot sample yet: no stored transition has a complete n-step window")
        oldest = self.added - len(self.buffer)
        every_range_len = total / batch_size
        positions, weights = [], []
        p_min = self.minima.root() / total
        max_weight = (p_min * len(self.buffer)) ** (-beta)
        for i in range(batch_size):
            mass = self.rng.random() * every_range_len + i * every_range_len
            slot = self.sums.find_prefixsum_idx(mass)
            while self.sums[slot] <= 0:  # rounding put the mass past the last open leaf
                slot = self.sums.find_prefixsum_idx(self.rng.random() * total)
            p_sample = self.sums[slot] / total
            # At least the smallest normal float32, as the C++ buffer: a sample always counts.
            weights.append(
                max((p_sample * len(self.buffer)) ** (-beta) / max_weight, float(np.finfo(np.float32).tiny))
            )
            positions.append((slot - oldest) % self.capacity)
        return self._batch(positions, weights)

    def update_priorities(self, transition_ids: IntsLike, priorities: RealsLike) -> int:
        if not self.prioritized:
            raise ValueError(
                "update_priorities: this buffer samples uniformly; construct it with prioritized=True"
            )
        ids = [int(i) for i in _to_numpy(transition_ids).reshape(-1)]
        values = [float(p) for p in _to_numpy(priorities).reshape(-1)]
        if len(values) != len(ids):
            raise ValueError(
                f"priorities: expected shape ({len(ids)},), one per transition id, got ({len(values)},)"
            )
        for i, (transition_id, priority) in enumerate(zip(ids, values, strict=True)):
            if not 0 <= transition_id < self.added:
                raise IndexError(f"transition_ids: {transition_id} at position {i} was never added")
            if not (np.isfinite(priority) and priority > 0):
                raise ValueError(f"priorities: expected finite values > 0, got {priority} at position {i}")
        applied = 0
        oldest = self.added - len(self.buffer)
        for transition_id, priority in zip(ids, values, strict=True):
            if transition_id < oldest or transition_id in self.open_windows:
                continue  # overwritten since it was sampled, or not sampleable
            self._set_leaf(transition_id, priority**self.alpha)
            self.max_priority = max(self.max_priority, priority)
            applied += 1
        return applied

    def get(self, indices: IntsLike) -> Batch:
        oldest = self.added - len(self.buffer)
        positions = [(int(slot) - oldest) % self.capacity for slot in _to_numpy(indices).reshape(-1)]
        for i, p in enumerate(positions):
            if self._window(p) is None:
                raise ValueError(
                    f"indices: slot {(oldest + p) % self.capacity} at position {i} holds a "
                    f"transition whose {self.n_step}-step window is not complete yet"
                )
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
        ended = lambda: len(window) == self.n_step or window[-1][7]  # n long, or the episode's end
        if self.n_step == 1:
            return window
        for later in itertools.islice(self.buffer, position + 1, None):
            if ended():
                break
            if later[6] == first[6]:
                window.append(later)
        return window if ended() else None

    def _batch(self, positions: Sequence[int] | np.ndarray, weights: Sequence[float] | None = None) -> Batch:
        rows = []
        for p in positions:
            window = self._window(p)
            assert window is not None  # the callers draw or check complete windows only
            reward, discount = window[-1][2], self.gamma
            for transition in reversed(window[:-1]):  # sum_j gamma^j r_j, float32, from the end
                reward = transition[2] + self.gamma * reward
                discount = discount * self.gamma
            last = window[-1]
            rows.append((window[0][0], window[0][1], reward, last[3], last[4], last[5], discount))
        obs, action, rewards, next_obs, terminated, truncated, discounts = zip(*rows, strict=True)
        oldest = self.added - len(self.buffer)
        transition_ids = [oldest + p for p in positions]
        indices = [t % self.capacity for t in transition_ids]
        weights = [1.0] * len(positions) if weights is None else weights
        return Batch(
            obs=torch.as_tensor(np.stack(obs)).to(self.device),
            action=torch.tensor(action, dtype=torch.int64, device=self.device),
            reward=torch.tensor(np.array(rewards, dtype=np.float32), device=self.device),
            next_obs=torch.as_tensor(np.stack(next_obs)).to(self.device),
            terminated=torch.tensor(terminated, dtype=torch.bool, device=self.device),
            truncated=torch.tensor(truncated, dtype=torch.bool, device=self.device),
            discount=torch.tensor(np.array(discounts, dtype=np.float32), device=self.device),
            indices=torch.tensor(indices, dtype=torch.int64, device=self.device),
            transition_ids=torch.tensor(transition_ids, dtype=torch.int64, device=self.device),
            weights=torch.tensor(np.array(weights, dtype=np.float32), device=self.device),
        )


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
