"""`PauseGate`: worker threads pass it once per unit of work; the main thread closes it to have
none of them inside (a checkpoint, an evaluation) and opens it again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class PauseGate:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._inside = 0
        self._closed = False
        self._open_for_good = False

    def open_for_good(self) -> None:
        """Lets every worker through from now on (the run is stopping: nothing may wait here)."""
        with self._changed:
            self._open_for_good = True
            self._changed.notify_all()

    @contextmanager
    def working(self) -> Iterator[None]:
        """One unit of a worker's work: waits while the gate is closed."""
        with self._changed:
            self._changed.wait_for(lambda: not self._closed or self._open_for_good)
            self._inside += 1
        try:
            yield
        finally:
            with self._changed:
                self._inside -= 1
                self._changed.notify_all()

    @contextmanager
    def closed(self) -> Iterator[None]:
        """Waits for the workers inside to finish their unit, and keeps them out for the duration
        (a worker waiting elsewhere, in the rate limiter, does not hold it up)."""
        try:
            with self._changed:
                self._closed = True
                self._changed.wait_for(lambda: self._inside == 0 or self._open_for_good)
            yield
        finally:  # reopened even when the wait is interrupted (Ctrl-C)
            with self._changed:
                self._closed = False
                self._changed.notify_all()
