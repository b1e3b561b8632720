"""Streams of ``ReplayBuffer.add`` calls as SB3 and CleanRL make them, with random frames, for tests
and benchmarks of `pydqn.integrations.sb3` against SB3's own buffer.

Every env steps a stack of frames (as VecFrameStack or FrameStackObservation do: a new episode's
stack is zeros then its first frame), acts at random, and ends episodes by termination or by
truncation. A call is given in one of three conventions:

- ``"sb3"``: SB3's off-policy loop (``done`` = terminated or truncated, a list of infos with
  ``"TimeLimit.truncated"``, ``next_obs`` the real final observation);
- ``"cleanrl"``: CleanRL's dqn_atari.py on a same-step vector env (``done`` = terminations, one
  info dict whose ``final_obs``/``_final_obs`` hold ended episodes' final observations, which
  CleanRL substitutes for truncated rows only: a terminated row's next obs is the reset obs);
- ``"next_step"``: CleanRL on a gymnasium 1.x NEXT_STEP vector env: after an episode ends, that
  env's next row is the autoreset step (final obs -> reset obs, reward 0, no flags), and
  ``RecordEpisodeStatistics``' ``_episode`` mask marks the ends.

`Call.sb3_args` gives the same transition rows in SB3's convention, to feed SB3's buffer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Call:
    obs: np.ndarray
    next_obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    autoreset: np.ndarray  # rows that are NEXT_STEP autoreset steps (no transition)
    convention: str
    returned_obs: np.ndarray  # what the vector env's step returned: reset obs where episodes ended

    def args(self) -> tuple[Any, ...]:
        """The call as ``convention`` makes it."""
        if self.convention == "sb3":
            return self.sb3_args()
        ended = self.terminated | self.truncated
        if self.convention == "next_step":
            infos: dict[str, Any] = {"episode": {"r": np.where(ended, 1.0, 0.0)}, "_episode": ended}
            return self.obs, self.next_obs, self.action, self.reward, self.terminated.copy(), infos
        final = np.empty(len(ended), dtype=object)
        for env in np.flatnonzero(ended):
            final[env] = self.next_obs[env]
        infos = {"final_obs": final, "_final_obs": ended}
        real_next_obs = self.returned_obs.copy()
        real_next_obs[self.truncated] = self.next_obs[self.truncated]
        return self.obs, real_next_obs, self.action, self.reward, self.terminated.copy(), infos

    def sb3_args(self) -> tuple[Any, ...]:
        done = self.terminated | self.truncated
        infos = [
            {"TimeLimit.truncated": bool(t and not d)}
            for t, d in zip(self.truncated, self.terminated, strict=True)
        ]
        return self.obs, self.next_obs, self.action, self.reward, done.astype(np.float32), infos


@dataclass
class CallStream:
    """Makes calls for ``n_envs`` envs whose observations stack ``frames`` frames of
    ``frame_shape`` along ``axis`` (0 or -1; ``frames=1``: no stacking)."""

    n_envs: int
    frame_shape: tuple[int, ...] = (6, 6)
    frames: int = 4
    axis: int = 0
    dtype: Any = np.uint8
    convention: str = "sb3"
    end_probability: float = 0.06
    actions: int = 6
    seed: int = 0
    _stacks: list[np.ndarray] = field(init=False)
    _pending_reset: list[bool] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self._stacks = [self._reset_stack() for _ in range(self.n_envs)]
        self._pending_reset = [False] * self.n_envs

    @property
    def obs_shape(self) -> tuple[int, ...]:
        if self.frames == 1:
            return self.frame_shape
        shape = list(self.frame_shape)
        shape[self.axis] *= self.frames
        return tuple(shape)

    def calls(self, count: int) -> list[Call]:
        return [self.step() for _ in range(count)]

    def step(self) -> Call:
        n = self.n_envs
        obs = np.stack(self._stacks)
        next_obs = np.empty_like(obs)
        reward = self.rng.normal(size=n).astype(np.float32)
        terminated, truncated, autoreset = (np.zeros(n, dtype=bool) for _ in range(3))
        for env in range(n):
            if self._pending_reset[env]:
                autoreset[env] = True
                reward[env] = 0.0
                next_obs[env] = self._stacks[env] = self._reset_stack()
                self._pending_reset[env] = False
                continue
            next_obs[env] = self._pushed(self._stacks[env], self._frame())
            ends = self.rng.random() < self.end_probability
            if ends:
                terminated[env] = self.rng.random() < 0.5
                truncated[env] = not terminated[env]
            if ends and self.convention == "next_step":
                self._stacks[env] = next_obs[env]
                self._pending_reset[env] = True
            else:
                self._stacks[env] = self._reset_stack() if ends else next_obs[env]
        action = self.rng.integers(0, self.actions, size=n)
        returned = np.stack(self._stacks)
        return Call(
            obs, next_obs, action, reward, terminated, truncated, autoreset, self.convention, returned
        )

    def _frame(self) -> np.ndarray:
        if np.issubdtype(self.dtype, np.integer):
            return self.rng.integers(1, 256, size=self.frame_shape).astype(self.dtype)
        return self.rng.normal(size=self.frame_shape).astype(self.dtype)

    def _reset_stack(self) -> np.ndarray:
        """Zeros, then the episode's first frame (VecFrameStack's reset)."""
        stack = np.zeros(self.obs_shape, dtype=self.dtype)
        return self._pushed(stack, self._frame())

    def _pushed(self, stack: np.ndarray, frame: np.ndarray) -> np.ndarray:
        if self.frames == 1:
            return frame.copy()
        width = frame.shape[self.axis]
        kept = np.take(stack, range(width, stack.shape[self.axis]), axis=self.axis)
        return np.concatenate([kept, frame], axis=self.axis)


def rows_of(obs: Any, action: Any, next_obs: Any, done: Any, reward: Any) -> Counter[tuple]:
    """Transitions as a multiset of rows (observation bytes, action, next bytes, done, reward):
    equal multisets hold the same rows, each as often."""
    arrays = [np.asarray(getattr(a, "cpu", lambda a=a: a)()) for a in (obs, action, next_obs, done, reward)]
    obs, action, next_obs, done, reward = arrays
    return Counter(
        (obs[i].tobytes(), int(action.reshape(-1)[i]), next_obs[i].tobytes(), float(done.reshape(-1)[i]),
         float(reward.reshape(-1)[i]))
        for i in range(len(obs))
    )  # fmt: skip
