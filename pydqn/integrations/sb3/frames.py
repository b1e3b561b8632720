"""How an SB3 observation holds its stack of frames, and the shape pydqn's buffer stores it in.

Frame stacking is what lets pydqn keep one frame per transition instead of two stacks, so the
adapter must know it. A user may declare it (``frame_stack``, ``stack_axis``); for image
observations it is otherwise read off the first transitions (other observations are stored whole
unless declared: they are small, and a few numbers can move on "by one frame" by chance). A stack
of k frames moves by one frame per step, so ``next_obs``'s first k-1 frames are ``obs``'s last
k-1; every stored row is checked for it by pydqn's buffer, which refuses a row that breaks it.
A wrong guess can therefore stop a run with a clear error, but never store wrong data.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pydqn._extension import load_extension

MAX_FRAMES: int = load_extension().LIMITS["frame_stack"]
# Rows that must show a stacking before it is taken (each an unlikely coincidence for images).
PROOF_ROWS = 2
# Rows kept while the stacking is still undetermined (every frame so far equal to the others:
# a static first screen); past this the buffer stores observations whole rather than hold more.
UNDECIDED_BYTES = 64 * 2**20
STACK_AXES = ("first", "last")


@dataclass(frozen=True)
class FrameLayout:
    """``frames`` frames concatenated along ``axis`` of an observation of ``obs_shape``, oldest
    first: axis 0 for channels-first images, gymnasium's ``FrameStackObservation`` and vectors,
    the last axis for SB3's ``VecFrameStack`` over channels-last images and other arrays.

    pydqn's buffer keeps stacks as ``(frames, *frame)`` (`buffer_shape`); `to_buffer` and
    `from_buffer` convert rows between the two (a reshape, plus a move of the frame axis when it
    is the last one).
    """

    obs_shape: tuple[int, ...]
    frames: int = 1
    axis: int = 0

    @property
    def channels(self) -> int:
        """The size along ``axis`` of one frame (1 for grayscale Atari)."""
        return self.obs_shape[self.axis] // self.frames

    @functools.cached_property
    def buffer_shape(self) -> tuple[int, ...]:
        if self.frames == 1:
            return self.obs_shape
        frame = list(self.obs_shape)
        if self.channels == 1:
            del frame[self.axis]
        else:
            frame[self.axis] = self.channels
        return (self.frames, *frame)

    @functools.cached_property
    def reshapes(self) -> bool:
        """Whether the buffer's shape differs from the observation's (else rows pass as they are)."""
        return self.buffer_shape != self.obs_shape

    def to_buffer(self, rows: np.ndarray) -> np.ndarray:
        """``(n, *obs_shape)`` rows as ``(n, *buffer_shape)``."""
        if not self.reshapes:
            return rows
        if self.frames == 1 or self.axis == 0:
            return rows.reshape(len(rows), *self.buffer_shape)
        split = rows.reshape(*rows.shape[:-1], self.frames, self.channels)
        return np.moveaxis(split, -2, 1).reshape(len(rows), *self.buffer_shape)

    def from_buffer(self, rows: torch.Tensor) -> torch.Tensor:
        """A batch ``(B, *buffer_shape)`` from the buffer as ``(B, *obs_shape)``."""
        if not self.reshapes:
            return rows
        if self.frames == 1 or self.axis == 0:
            return rows.reshape(len(rows), *self.obs_shape)
        split = rows.reshape(len(rows), self.frames, *self.obs_shape[:-1], self.channels)
        return split.movedim(1, -2).reshape(len(rows), *self.obs_shape)

    def describe(self) -> str:
        if self.frames == 1:
            return "no frame stacking"
        where = "axis 0" if self.axis == 0 else f"the last axis (axis {self.axis})"
        return f"frame_stack={self.frames} along {where}, {self.channels} channel(s) per frame"

    def shifts(self, obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Per row, whether ``next_obs`` is ``obs`` moved on by one frame."""
        if self.frames == 1:
            return np.ones(len(obs), dtype=bool)
        before, after = self._frames(obs), self._frames(next_obs)
        return (after[:, :-1] == before[:, 1:]).all(axis=(1, 2))

    def informative(self, obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Per row, whether its frames (obs's and next_obs's newest) are not all one picture: only
        such a row tells a stack from an observation whose channels happen to be equal."""
        seen = np.concatenate([self._frames(obs), self._frames(next_obs)[:, -1:]], axis=1)
        return ~(seen == seen[:, :1]).all(axis=(1, 2))

    def _frames(self, rows: np.ndarray) -> np.ndarray:
        return self.to_buffer(rows).reshape(len(rows), self.frames, -1)


class FrameStackDetector:
    """Decides an observation's `FrameLayout` from the rows it is shown.

    Candidates are every (frames, axis) the observation's shape allows (if ``detect``), or those
    the user declared. A row that is not its ``obs`` moved on by one frame rules a candidate out;
    a row that fits it and is `FrameLayout.informative` supports it. The layout is decided once
    exactly one surviving candidate has `PROOF_ROWS` such rows and no other has any, or once none
    survives (the observation is stored whole).
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        *,
        frame_stack: int | None,
        stack_axis: str | None,
        default_axis: int,
        detect: bool,
    ) -> None:
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.declared = frame_stack is not None
        self.default_axis = default_axis
        last = len(self.obs_shape) - 1
        axes = [0] if last <= 0 else [0, last]
        if stack_axis is not None:
            axes = [0 if stack_axis == "first" else last]
        if frame_stack == 1 or (frame_stack is None and not detect):
            self.candidates: list[FrameLayout] = []
        else:
            self.candidates = [
                FrameLayout(self.obs_shape, frames, axis)
                for axis in axes
                for frames in _frame_counts(self.obs_shape[axis] if self.obs_shape else 1, frame_stack)
            ]
        if self.declared and frame_stack != 1 and not self.candidates:
            sizes = ", ".join(str(self.obs_shape[axis]) for axis in axes) or "no axis"
            raise ValueError(
                f"frame_stack: {frame_stack} frames cannot divide the observation space's shape "
                f"{self.obs_shape} (stacking axis size {sizes}); expected a divisor of the stacking "
                f"axis' size, up to {MAX_FRAMES}"
            )
        self._support: dict[FrameLayout, int] = {}
        self.layout: FrameLayout | None = None if self.candidates else FrameLayout(self.obs_shape)

    def observe(self, obs: np.ndarray, next_obs: np.ndarray) -> FrameLayout | None:
        """Learns from rows ``(n, *obs_shape)`` stepped by the env; returns the layout once decided.

        Raises ValueError naming ``frame_stack`` when rows contradict every declared layout.
        """
        if self.layout is not None:
            return self.layout
        survivors = [c for c in self.candidates if c.shifts(obs, next_obs).all()]
        if self.declared and not survivors:
            raise ValueError(
                "frame_stack: the observations do not stack the declared frames: a row's "
                "next_obs is not its obs moved on by one frame along any allowed axis; "
                "declare the env's real frame_stack (1 if it stacks none), or leave it unset "
                "to detect it"
            )
        self.candidates = survivors
        for candidate in survivors:
            rows = int(np.count_nonzero(candidate.informative(obs, next_obs)))
            self._support[candidate] = self._support.get(candidate, 0) + rows
        if not survivors:
            self.layout = FrameLayout(self.obs_shape)
        supported = [c for c in survivors if self._support.get(c, 0) > 0]
        if len(supported) == 1 and self._support[supported[0]] >= PROOF_ROWS:
            self.layout = supported[0]
        return self.layout

    def decide_now(self) -> FrameLayout:
        """The layout, decided from what was seen when it must be (a sample, a save): a declared
        stack that still fits, else the observation stored whole (always exact), with a warning."""
        if self.layout is not None:
            return self.layout
        if self.declared:
            by_preference = sorted(self.candidates, key=lambda c: c.axis != self.default_axis)
            self.layout = by_preference[0]
            return self.layout
        warnings.warn(
            "pydqn ReplayBuffer: the first transitions did not show whether observations stack "
            "frames (their frames were all alike), so they are stored whole, without pydqn's "
            "frame deduplication; pass replay_buffer_kwargs=dict(frame_stack=k) to declare it",
            RuntimeWarning,
            stacklevel=3,
        )
        self.layout = FrameLayout(self.obs_shape)
        return self.layout


def _frame_counts(size: int, declared: int | None) -> list[int]:
    """Frame counts that split an axis of ``size``, largest first."""
    if declared is not None:
        return [declared] if 2 <= declared <= MAX_FRAMES and size % declared == 0 else []
    return sorted((k for k in range(2, min(size, MAX_FRAMES) + 1) if size % k == 0), reverse=True)


def stack_count(value: object) -> int | None:
    """``frame_stack`` as given to the buffer: None (detect) or a frame count, checked."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"frame_stack: expected an int or None (detect), got {type(value).__name__}")
    if not 1 <= value <= MAX_FRAMES:
        raise ValueError(f"frame_stack: expected 1..{MAX_FRAMES} frames, or None to detect, got {value}")
    return int(value)


def axis_name(value: object) -> str | None:
    if value is not None and value not in STACK_AXES:
        raise ValueError(f"stack_axis: expected 'first', 'last' or None (detect), got {value!r}")
    return value
