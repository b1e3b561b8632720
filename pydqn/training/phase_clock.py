"""Where a training loop's wall time goes: acting, env stepping, buffer operations, learning,
and (asynchronous trainer) waiting for the other thread."""

from __future__ import annotations

import time
from collections.abc import Callable

PHASES = ("acting", "env", "buffer", "learning", "waiting", "other")


class PhaseClock:
    """Charges wall time to named phases: ``lap(phase)`` books the time since the previous lap.

    A lap costs two ``perf_counter`` calls, so the clock always runs. On CUDA, work is queued and
    its time shows up wherever the host next waits; pass ``synchronize`` (e.g.
    ``torch.cuda.synchronize``) to charge it to the phase that queued it, at some cost in speed.
    """

    def __init__(self, synchronize: Callable[[], None] | None = None) -> None:
        self._synchronize = synchronize
        self.restart()

    def restart(self) -> None:
        """Forget the time booked so far and start timing from now."""
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        if self._synchronize is not None:
            self._synchronize()
        now = time.perf_counter()
        self.seconds[phase] += now - self._last
        self._last = now

    def shares(self) -> dict[str, float]:
        """Each phase's fraction of the time booked."""
        total = sum(self.seconds.values()) or 1.0
        return {phase: seconds / total for phase, seconds in self.seconds.items()}
