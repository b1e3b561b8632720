"""The asynchronous trainer: an actor thread steps the envs while a learner thread updates.

    actor thread:   act (actor copy of the network) -> env.step -> ReplayBuffer.add ──┐
                                                                                      │ lock-free
    learner thread: ReplayBuffer.sample -> DQNLearner.update -> refresh the actor copy <┘
    main thread:    progress, logs; pauses both for checkpoints and evaluations

The replay ratio holds as in the synchronous loop: after the first ``updates_from`` env steps the
learner owes one update per ``train_frequency`` env steps. It never runs ahead of what it owes,
and the actor stops stepping while the learner is more than ``async_window`` updates behind.
ale-py's vector env and torch release the GIL, so the two threads overlap.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pydqn.training.config import TrainConfig
from pydqn.training.phase_clock import PhaseClock
from pydqn.training.resume import ResumePoint
from pydqn.training.trainer import Trainer, TrainResult


class AsyncTrainer(Trainer):
    """`Trainer` with acting and learning on two threads (``pydqn train --async``).

    An exception in either thread stops both and is raised in the caller (after the final
    checkpoint), with its original traceback. Ctrl-C checkpoints and returns, as in `Trainer`.
    """

    shares_buffer_between_threads = True  # the actor adds while the learner samples

    def __init__(
        self,
        config: TrainConfig | None,
        run_dir: Path,
        resume: bool | ResumePoint = False,
        synchronize_phases: bool = False,
        overwrite: bool = False,
    ) -> None:
        super().__init__(config, run_dir, resume, synchronize_phases, overwrite)
        self.actor_network = copy.deepcopy(self.learner.online).requires_grad_(False)
        self._actor_lock = threading.Lock()  # the actor's forward pass vs the learner's refresh
        self._changed = threading.Condition()  # step, updates, pause and stop changes
        self._thread_ended = threading.Event()  # wakes the main thread, which otherwise polls
        self._stop = False
        self._pause = False
        self._parked = 0
        self._errors: list[BaseException] = []
        self.actor_clock, self.learner_clock = PhaseClock(self.phase_sync), PhaseClock(self.phase_sync)
        self._timed_from: tuple[int, int] | None = None
        self._timed_since = 0.0

    def act(self, obs: np.ndarray) -> np.ndarray:
        with self._actor_lock:
            return self.act_with(self.actor_network, obs)

    def updates_behind(self) -> float:
        """Updates the replay ratio asks for at the current env step that are not made yet
        (negative: the learner is ahead)."""
        owed = max(0, self.step - self.updates_from) / self.config.train_frequency
        return owed - (self.learner.updates - self._updates_before)

    def run(self) -> TrainResult:
        self._begin()
        self._timed_since = time.perf_counter()
        self._updates_before = self.learner.updates  # a resumed run's earlier updates
        self._threads = threads = [
            threading.Thread(target=self._guarded, args=(loop,), name=f"pydqn-{name}")
            for name, loop in (("actor", self._actor_loop), ("learner", self._learner_loop))
        ]
        for thread in threads:
            thread.start()
        interrupted = False
        try:
            while any(thread.is_alive() for thread in threads):
                # Polled, not notified per step: a wakeup per env step costs the workers the GIL.
                self._thread_ended.wait(timeout=0.25)
                self.progress.update(self.step, self.learner.updates, self.epsilon(self.step))
                if self.chores_due() and not self._errors:
                    with self._paused():
                        self.do_chores()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self._halt(threads)
            self.save()
            self.progress.update(self.step, self.learner.updates, self.epsilon(self.step), force=True)
        if self._errors:
            raise self._errors[0]
        seconds = {
            phase: self.actor_clock.seconds[phase] + self.learner_clock.seconds[phase]
            for phase in self.clock.seconds
        }
        return self._result(interrupted, seconds, time.perf_counter() - self._timed_since, self._timed_from)

    # ---- the two threads ---------------------------------------------------------------------

    def _actor_loop(self) -> None:
        config, clock = self.config, self.actor_clock
        window = config.async_window
        clock.restart()
        while self.step < config.total_steps:
            with self._changed:
                self._wait_while(lambda: self.updates_behind() > window)
                if self._stop:
                    return
            clock.lap("waiting")
            self.collect(clock)
            if self._timed_from is None and self.step >= self.updates_from:
                self._timed_from = (self.step, self.learner.updates)
                self._timed_since = time.perf_counter()
                clock.restart()
            with self._changed:
                self._changed.notify_all()

    def _learner_loop(self) -> None:
        config, clock = self.config, self.learner_clock
        started = False
        clock.restart()
        while True:
            with self._changed:
                self._wait_while(lambda: self.updates_behind() < 1 and self.step < config.total_steps)
                if self._stop or self.updates_behind() < 1:
                    return  # stopped, or the actor is done and every owed update is made
            if not started:
                started = True
                clock.restart()
            clock.lap("waiting")
            self.learn(clock)
            if self.learner.updates % config.actor_sync_interval == 0:
                with self._actor_lock:
                    self.actor_network.load_state_dict(self.learner.online.state_dict())
            with self._changed:
                self._changed.notify_all()

    def _wait_while(self, blocked: Callable[[], bool]) -> None:
        """With ``_changed`` held: wait while ``blocked()`` or a pause is on, unless stopping."""
        while not self._stop and (self._pause or blocked()):
            if self._pause:
                self._parked += 1
                self._changed.notify_all()
                while self._pause and not self._stop:
                    self._changed.wait()
                self._parked -= 1
            else:
                self._changed.wait()

    def _guarded(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as error:  # surfaces in run(), after both threads stopped
            with self._changed:
                self._errors.append(error)
                self._stop = True
                self._changed.notify_all()
        finally:
            with self._changed:
                self._changed.notify_all()
            self._thread_ended.set()

    @contextmanager
    def _paused(self) -> Iterator[None]:
        """Both threads parked at a safe point (or finished) for the duration."""
        with self._changed:
            self._pause = True
            self._changed.notify_all()
            while self._parked < sum(t.is_alive() for t in self._threads) and not self._stop:
                self._changed.wait(timeout=0.25)
        try:
            yield
        finally:
            with self._changed:
                self._pause = False
                self._changed.notify_all()

    def _halt(self, threads: list[threading.Thread]) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        for thread in threads:
            thread.join()
        # The clocks booked the final wait; waiting until the end is not work.
        for clock in (self.actor_clock, self.learner_clock):
            clock.lap("waiting")
