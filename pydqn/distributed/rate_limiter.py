"""`RateLimiter`: holds the replay ratio both ways, in Reverb's manner (``SampleToInsertRatio``).

With ``samples_per_insert`` = r, the learner may sample about r transitions per transition the
actors insert. The limiter tracks ``diff = r * inserted - sampled`` and keeps it inside
``[r * min_size_to_sample - error_buffer, r * min_size_to_sample + error_buffer]``: an insert that
would push it above waits (the actors are slowed, never racing ahead unboundedly), and a sample
that would push it below waits (the learner does not over-sample). Until ``min_size_to_sample``
transitions are in, inserts never wait and samples always do.
"""

from __future__ import annotations

import threading
import time


class RateLimiterClosed(RuntimeError):
    """The limiter was closed while a call waited, or before it (training is stopping)."""


class RateLimiter:
    """Blocks inserts and samples that would leave the replay ratio's error buffer (thread-safe).

    Args:
        samples_per_insert: transitions sampled per transition inserted (> 0).
        min_size_to_sample: transitions inserted before the first sample.
        error_buffer: how far (in sampled transitions) the ratio may stray each way; it must
            leave room for the largest single insert (``max_insert`` rows) and sample
            (``max_sample``), or those could never go through.
    """

    def __init__(
        self,
        samples_per_insert: float,
        min_size_to_sample: int,
        error_buffer: float,
        *,
        max_insert: int = 1,
        max_sample: int = 1,
    ) -> None:
        if not samples_per_insert > 0:
            raise ValueError(f"samples_per_insert: expected a value > 0, got {samples_per_insert}")
        if min_size_to_sample < 1:
            raise ValueError(f"min_size_to_sample: expected at least 1, got {min_size_to_sample}")
        needed = max(samples_per_insert * max_insert, max_sample)
        if error_buffer < needed:
            raise ValueError(
                f"error_buffer: expected at least {needed:g} (one insert of {max_insert} rows is "
                f"{samples_per_insert * max_insert:g} samples' worth, one sample takes {max_sample}), "
                f"got {error_buffer}"
            )
        self.samples_per_insert = float(samples_per_insert)
        self.min_size_to_sample = int(min_size_to_sample)
        # The diff at which samples are exactly what the ratio asks for after the minimum size.
        self.centre = self.samples_per_insert * self.min_size_to_sample
        self.min_diff, self.max_diff = self.centre - error_buffer, self.centre + error_buffer
        self.inserted = 0
        self.sampled = 0
        self.insert_waits = 0.0  # seconds inserts spent waiting
        self.sample_waits = 0.0  # seconds samples spent waiting
        self._closed = False
        self._changed = threading.Condition()

    @property
    def diff(self) -> float:
        return self.samples_per_insert * self.inserted - self.sampled

    def can_insert(self, rows: int) -> bool:
        if self.inserted + rows <= self.min_size_to_sample:
            return True
        return self.diff + self.samples_per_insert * rows <= self.max_diff

    def can_sample(self, rows: int) -> bool:
        return self.inserted >= self.min_size_to_sample and self.diff - rows >= self.min_diff

    def insert(self, rows: int, timeout: float | None = None) -> bool:
        """Waits until ``rows`` transitions may go in, then counts them; False on timeout."""
        return self._admit(rows, timeout, inserting=True)

    def wait_to_insert(self, rows: int, timeout: float | None = None) -> bool:
        """Waits until ``rows`` transitions may go in, without counting them (False on timeout):
        a single inserter stores them, then counts them with `inserted_now`, so that no sample is
        let through for rows not stored yet. (Samples only make more room meanwhile.)"""
        return self._admit(rows, timeout, inserting=True, count=False)

    def inserted_now(self, rows: int) -> None:
        """Counts ``rows`` transitions stored after `wait_to_insert` let them in."""
        with self._changed:
            self.inserted += rows
            self._changed.notify_all()

    def sample(self, rows: int, timeout: float | None = None) -> bool:
        """Waits until ``rows`` transitions may be sampled, then counts them; False on timeout."""
        return self._admit(rows, timeout, inserting=False)

    def close(self) -> None:
        """Wakes every waiting call, which raises `RateLimiterClosed`; later calls raise too."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _admit(self, rows: int, timeout: float | None, *, inserting: bool, count: bool = True) -> bool:
        if rows < 1:
            raise ValueError(f"rows: expected at least 1, got {rows}")
        allowed = self.can_insert if inserting else self.can_sample
        with self._changed:
            started = time.monotonic()
            ready = self._changed.wait_for(lambda: self._closed or allowed(rows), timeout)
            waited = time.monotonic() - started
            if inserting:
                self.insert_waits += waited
            else:
                self.sample_waits += waited
            if self._closed:
                raise RateLimiterClosed("the rate limiter was closed (training is stopping)")
            if not ready:
                return False
            if not count:
                return True
            if inserting:
                self.inserted += rows
            else:
                self.sampled += rows
            self._changed.notify_all()
            return True
