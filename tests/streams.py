"""Observation streams shaped the way frame-stacking environments emit them, for the tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from hypothesis import strategies as st

PADDINGS = ("repeat", "zeros", "distinct")
ENDS = ["run"] * 6 + ["terminated", "truncated", "both"]  # how each row's step ends, mostly running


@dataclass
class StackedEnvs:
    """Several env streams whose observations are stacks of the last ``k`` frames, oldest first.

    ``padding`` is what fills the first stack of an episode: the first frame repeated (gymnasium's
    FrameStackObservation), zeros, or distinct random frames. ``repeat_prob`` is the chance that a
    new frame equals the previous one (a static screen).
    """

    num_envs: int
    frame_shape: tuple[int, ...]
    k: int
    dtype: torch.dtype
    padding: str = "repeat"
    repeat_prob: float = 0.0
    seed: int = 0
    rng: np.random.Generator = field(init=False)
    stacks: list[np.ndarray | None] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.stacks = [None] * self.num_envs

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return (self.k, *self.frame_shape) if self.k > 1 else self.frame_shape

    def frame(self) -> np.ndarray:
        if self.dtype == torch.uint8:
            return self.rng.integers(0, 256, self.frame_shape, dtype=np.uint8)
        return self.rng.standard_normal(self.frame_shape).astype(np.float32)

    def _first_stack(self) -> np.ndarray:
        first = self.frame()
        if self.padding == "repeat":
            frames = [first] * self.k
        elif self.padding == "zeros":
            frames = [np.zeros_like(first)] * (self.k - 1) + [first]
        else:
            frames = [self.frame() for _ in range(self.k - 1)] + [first]
        return np.stack(frames)

    def obs(self, env: int) -> np.ndarray:
        """The current observation of `env`, starting an episode if none runs."""
        if self.stacks[env] is None:
            self.stacks[env] = self._first_stack()
        stack = self.stacks[env]
        assert stack is not None
        return stack if self.k > 1 else stack[0]

    def step(self, env: int, episode_ends: bool) -> tuple[np.ndarray, np.ndarray]:
        """Advance `env` by one frame; returns (obs, next_obs) as the agent sees them."""
        obs = self.obs(env)
        stack = self.stacks[env]
        assert stack is not None
        new = stack[-1].copy() if self.rng.random() < self.repeat_prob else self.frame()
        next_stack = np.concatenate([stack[1:], new[None]])
        self.stacks[env] = None if episode_ends else next_stack
        return obs, (next_stack if self.k > 1 else next_stack[0])


def add_rows(buffers, envs: StackedEnvs, env_ids, ends, rng: np.random.Generator):
    """Step `env_ids` once and add the same rows to every buffer; returns each buffer's slots.

    ``ends`` holds one of "run", "terminated", "truncated", "both" per env.
    """
    rows = [envs.step(e, end != "run") for e, end in zip(env_ids, ends, strict=True)]
    obs = np.stack([r[0] for r in rows])
    next_obs = np.stack([r[1] for r in rows])
    action = rng.integers(0, 18, len(env_ids))
    reward = rng.standard_normal(len(env_ids)).astype(np.float32)
    terminated = np.array([end in ("terminated", "both") for end in ends])
    truncated = np.array([end in ("truncated", "both") for end in ends])
    return [
        b.add(obs, action, reward, next_obs, terminated, truncated, env_ids=list(env_ids)) for b in buffers
    ]


def assert_same_batch(actual, expected) -> None:
    for name in actual._fields:
        a, e = getattr(actual, name), getattr(expected, name)
        assert a.dtype == e.dtype and a.shape == e.shape, (name, a.dtype, e.dtype, a.shape, e.shape)
        # Bit for bit: compare the raw bytes, so -0.0 vs 0.0 or NaN payloads would differ too.
        assert torch.equal(a.contiguous().view(torch.uint8), e.contiguous().view(torch.uint8)), name


def draw_adds(data, num_envs: int, capacity: int):
    """Hypothesis-drawn add() calls, enough to wrap a `capacity` ring a few times: each yields
    the env ids of its rows (a non-empty subset) and how each row's step ends (see ENDS)."""
    for _ in range(data.draw(st.integers(1, 3 * capacity + 10), label="adds")):
        env_ids = data.draw(
            st.lists(st.integers(0, num_envs - 1), min_size=1, max_size=num_envs, unique=True),
            label="env_ids",
        )
        ends = data.draw(
            st.lists(st.sampled_from(ENDS), min_size=len(env_ids), max_size=len(env_ids)), label="ends"
        )
        yield env_ids, ends
