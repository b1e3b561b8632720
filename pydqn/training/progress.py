"""The live progress line of a training run."""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import TextIO


class Progress:
    """One status line: steps, frames/s, updates/s, mean return of the last 100 episodes, epsilon,
    ETA. Redrawn in place on a terminal, printed at most every ``interval`` seconds otherwise."""

    def __init__(
        self,
        total_steps: int,
        start_step: int,
        frames_per_step: int,
        stream: TextIO = sys.stderr,
        interval: float = 0.5,
    ) -> None:
        self.total_steps, self.frames_per_step = total_steps, frames_per_step
        self.stream, self.interval = stream, interval if stream.isatty() else 30.0
        self.returns: deque[float] = deque(maxlen=100)
        self._start = time.perf_counter()
        self._start_step = start_step
        self._last_draw = 0.0
        self._last = (self._start, start_step, 0)
        self.fps = self.updates_per_s = 0.0

    def episode(self, raw_return: float) -> None:
        self.returns.append(raw_return)

    def mean_return(self) -> float:
        return sum(self.returns) / len(self.returns) if self.returns else float("nan")

    def update(self, step: int, updates: int, epsilon: float, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_draw < self.interval:
            return
        last_time, last_step, last_updates = self._last
        elapsed = max(now - last_time, 1e-9)
        self.fps = (step - last_step) * self.frames_per_step / elapsed
        self.updates_per_s = (updates - last_updates) / elapsed
        self._last, self._last_draw = (now, step, updates), now
        rate = (step - self._start_step) / max(now - self._start, 1e-9)
        eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
        line = (
            f"step {step:,}/{self.total_steps:,} | {self.fps:,.0f} frames/s | "
            f"{self.updates_per_s:,.0f} updates/s | return(100) {self.mean_return():.1f} | "
            f"eps {epsilon:.3f} | ETA {_duration(eta)}"
        )
        end = "\r" if self.stream.isatty() and not force else "\n"
        print(line.ljust(100), end=end, file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
