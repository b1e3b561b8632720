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
        stream: TextIO | None = None,
        interval: float = 0.5,
        start_updates: int = 0,
    ) -> None:
        self.total_steps, self.frames_per_step = total_steps, frames_per_step
        stream = sys.stderr if stream is None else stream  # the one of the moment, not of the import
        self.stream, self.interval = stream, interval if stream.isatty() else 30.0
        self.returns: deque[float] = deque(maxlen=100)
        self._start = time.perf_counter()
        self._start_step, self._start_updates = start_step, start_updates
        self._last_draw = 0.0
        # A resumed run's rates count from where it resumed, not from step 0.
        self._last = (self._start, start_step, start_updates)
        self.fps = self.updates_per_s = 0.0

    def episode(self, raw_return: float) -> None:
        self.returns.append(raw_return)

    def mean_return(self) -> float:
        return sum(self.returns) / len(self.returns) if self.returns else float("nan")

    def update(self, step: int, updates: int, epsilon: float, force: bool = False, detail: str = "") -> None:
        """Redraw the line if ``interval`` has passed; ``force`` draws the final line, whose rates
        are the averages over the whole call. ``detail`` goes before the time (a trainer's own
        figures)."""
        now = time.perf_counter()
        if not force and now - self._last_draw < self.interval:
            return
        last_time, last_step, last_updates = (
            (self._start, self._start_step, self._start_updates) if force else self._last
        )
        elapsed = max(now - last_time, 1e-9)
        self.fps = (step - last_step) * self.frames_per_step / elapsed
        self.updates_per_s = (updates - last_updates) / elapsed
        self._last, self._last_draw = (now, step, updates), now
        rate = (step - self._start_step) / max(now - self._start, 1e-9)
        eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
        returns = f"{self.mean_return():.1f}" if self.returns else "-"
        line = (
            f"step {step:,}/{self.total_steps:,} | {self.fps:,.0f} frames/s | "
            f"{self.updates_per_s:,.0f} updates/s | return(100) {returns} | "
            f"eps {epsilon:.3f} | "
            + (f"{detail} | " if detail else "")
            + (f"{_duration(now - self._start)} elapsed" if force else f"ETA {_duration(eta)}")
        )
        end = "\r" if self.stream.isatty() and not force else "\n"
        print(line.ljust(100), end=end, file=self.stream, flush=True)

    def evaluation(self, step: int, mean_return: float, episodes: int, best: bool) -> None:
        """A line for a periodic evaluation (under the live line, which the next update redraws)."""
        kept = "; best so far, kept as best.pt" if best else ""
        played = plural(episodes, "episode")
        line = f"evaluation at step {step:,}: mean return {mean_return:.1f} over {played}{kept}"
        print(("\r" if self.stream.isatty() else "") + line.ljust(100), file=self.stream, flush=True)


def plural(count: int, noun: str) -> str:
    """``1 episode``, ``2 episodes``, ``1,000 episodes``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
