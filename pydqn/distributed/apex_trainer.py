"""The Ape-X trainer (``pydqn train --actors N``): Ray actor processes step the envs, this
process's learner owns the replay buffer.

    actor processes:  ExperienceActor.collect -> ExperienceChunk (one new frame per transition)
                                                      │ Ray (one request in flight per actor)
    ingest thread:    RateLimiter.insert -> ChunkReader.replay -> ReplayBuffer.add ──┐ lock-free
    learner thread:   RateLimiter.sample -> ReplayBuffer.sample -> DQNLearner.update <┘
                      -> every actor_sync_interval updates: weights to Ray's object store
    main thread:      progress, logs; closes the PauseGate for checkpoints and evaluations

The rate limiter holds the sync trainer's replay ratio, batch_size / train_frequency samples per
transition stored, within ``error_buffer`` samples either way: an actor's chunk waits (and the
actor with it: its next request goes out once the chunk is let in) while the learner is behind,
and the learner waits while it is ahead. Each actor env is a buffer stream of its own; when an
actor fails, its streams' open episodes are ended in the buffer (nothing is stored for the lost
chunk) and Ray restarts it with fresh envs. With prioritized replay, new transitions enter at the
largest priority so far, as in the sync trainer (Ape-X's actors computed initial priorities
because its buffer lived elsewhere; this learner's adds cost no forward pass either way).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gymnasium.vector import VectorEnv

from pydqn.distributed.actor import EnvFactory
from pydqn.distributed.chunks import ChunkReader
from pydqn.distributed.cluster import RayCluster
from pydqn.distributed.exploration import ActorExploration
from pydqn.distributed.fleet import ActorFleet, Delivery, Fault
from pydqn.distributed.pause_gate import PauseGate
from pydqn.distributed.rate_limiter import RateLimiter, RateLimiterClosed
from pydqn.envs import frames_per_step
from pydqn.replay import ReplayBuffer
from pydqn.settings import SettingError
from pydqn.training.config import TrainConfig
from pydqn.training.phase_clock import PhaseClock
from pydqn.training.resume import ResumePoint
from pydqn.training.trainer import Trainer, TrainResult

POLL_SECONDS = 0.25  # how often waiting threads look at the stop flag
ACTORS_PLACED_SECONDS = 300.0  # for every actor to start (a busy cluster's CPUs may never free up)

# metrics.csv's columns after the trainers' common ones (then fps_actor0, fps_actor1, ...).
APEX_METRICS = (
    "ingested_per_s",
    "bytes_per_transition",
    "inserted",
    "sampled",
    "insert_wait_s",
    "sample_wait_s",
    "actor_restarts",
)


class ApexTrainer(Trainer):
    """`Trainer` with ``config.actors`` Ray actor processes stepping the envs (see the module).

    ``env_factory(num_envs, seed)`` replaces the run's env id with envs of the caller's (pydqn's
    conventions: NEXT_STEP autoreset, the episode infos); Ray pickles it to the actors. An actor
    fault is logged and counted and the run goes on; an exception in the learner or the ingest,
    or an actor failing more than ``actor_max_restarts`` times, stops every actor, writes the final
    checkpoint and is raised. Ctrl-C stops the actors, checkpoints and returns, as in `Trainer`.
    """

    shares_buffer_between_threads = True  # the ingest thread adds while the learner samples

    def __init__(
        self,
        config: TrainConfig | None,
        run_dir: Path,
        resume: bool | ResumePoint = False,
        synchronize_phases: bool = False,
        overwrite: bool = False,
        env_factory: EnvFactory | None = None,
    ) -> None:
        self.env_factory = env_factory
        super().__init__(config, run_dir, resume, synchronize_phases, overwrite)
        self.ingest_clock, self.learner_clock = PhaseClock(self.phase_sync), PhaseClock(self.phase_sync)
        self.fleet: ActorFleet | None = None

    @property
    def local_envs(self) -> int:
        return 1  # for the spaces only: the actors step the run's envs

    def make_env(self, num_envs: int, seed: int) -> VectorEnv:
        if self.env_factory is None:
            return super().make_env(num_envs, seed)
        return self.env_factory(num_envs, seed)

    def _build(self, config: TrainConfig, point: ResumePoint | None) -> None:
        if not config.actors:
            raise SettingError("actors: the Ape-X trainer needs at least 1 actor, got 0")
        self.cluster = RayCluster(config)  # first: a cluster that cannot serve costs nothing more
        super()._build(config, point)
        explorations = [ActorExploration(config, actor) for actor in range(config.actors)]
        self.epsilon = lambda step: sum(e(step) for e in explorations) / len(explorations)

    def _start_episodes(self) -> None:
        """The actors start their own episodes."""

    def metric_fields(self) -> tuple[str, ...]:
        actors = tuple(f"fps_actor{i}" for i in range(self.config.actors))
        return (*super().metric_fields(), *APEX_METRICS, *actors)

    # ---- the run -----------------------------------------------------------------------------

    def run(self) -> TrainResult:
        config = self.config
        self._begin()
        self.limiter = RateLimiter(
            config.samples_per_insert,
            max(1, self.updates_from - self.step),  # learning_starts, or 1 after a saved buffer
            config.error_buffer,
            max_insert=config.chunk_rows,
            max_sample=config.batch_size,
        )
        assert isinstance(self.buffer, ReplayBuffer)  # the config requires it
        self.readers = [ChunkReader(self.buffer.frame_stack) for _ in range(config.actors)]
        self.gate, self._stop, self._ingest_done = PauseGate(), threading.Event(), threading.Event()
        self._errors: list[BaseException] = []
        self.ingested = self.bytes_received = 0
        self.actor_steps = [0] * config.actors
        self._window = (time.perf_counter(), 0, 0, [0] * config.actors)
        interrupted, started_at = False, (self.step, self.learner.updates)
        threads = [
            threading.Thread(target=self._guarded, args=(loop,), name=f"pydqn-{name}", daemon=True)
            for name, loop in (("ingest", self._ingest_loop), ("learner", self._learner_loop))
        ]
        try:
            self.fleet = fleet = ActorFleet(self.cluster.ray, config, self.env_factory)
            fleet.wait_until_placed(ACTORS_PLACED_SECONDS)
            fleet.publish(self.learner.online)
            self._requested = self.step
            for actor in range(config.actors):
                self._request(actor)
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads):
                next(thread for thread in threads if thread.is_alive()).join(POLL_SECONDS)
                self.progress.update(
                    self.step, self.learner.updates, self.epsilon(self.step), detail=self._live_detail()
                )
                if self.chores_due() and not self._errors:
                    with self.gate.closed():
                        self.do_chores()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self._halt(threads)
            self.save()
            self.progress.update(
                self.step,
                self.learner.updates,
                self.epsilon(self.step),
                force=True,
                detail=self._live_detail(),
            )
        if self._errors:
            raise self._errors[0]
        seconds = {
            phase: self.ingest_clock.seconds[phase] + self.learner_clock.seconds[phase]
            for phase in self.clock.seconds
        }
        return self._result(interrupted, seconds, self._wall_time(), started_at)

    def _request(self, actor: int) -> None:
        """Ask ``actor`` for a chunk, while the chunks asked for fall short of ``total_steps``."""
        assert self.fleet is not None
        if self._requested < self.config.total_steps:
            self.fleet.request(actor, self.step)
            self._requested += self.config.chunk_rows

    # ---- the two threads ---------------------------------------------------------------------

    def _ingest_loop(self) -> None:
        fleet, clock = self.fleet, self.ingest_clock
        assert fleet is not None
        clock.restart()
        try:
            while fleet.in_flight and not self._stop.is_set():
                events = fleet.wait(POLL_SECONDS)
                clock.lap("waiting")
                for event in events:
                    if isinstance(event, Fault):
                        self._requested -= self.config.chunk_rows  # the lost chunk's steps, asked again
                        self._close_streams(event.actor, f"failed ({event.error})")
                        self._request(event.actor)
                    elif not self._ingest(event, clock):
                        return
        finally:
            self._ingest_done.set()

    def _ingest(self, delivery: Delivery, clock: PhaseClock) -> bool:
        """Store a delivered chunk once the rate limiter lets it in (False: stopping instead)."""
        report = delivery.report
        chunk = report.chunk
        try:
            while chunk.rows and not self.limiter.wait_to_insert(chunk.rows, timeout=POLL_SECONDS):
                if self._stop.is_set():
                    return False
        except RateLimiterClosed:
            return False
        clock.lap("waiting")
        self._request(report.actor)  # the actor steps on while its chunk goes in
        if delivery.restarted:
            self._close_streams(report.actor, "was restarted")
        offset = report.actor * self.config.envs_per_actor
        with self.gate.working():
            for call in self.readers[report.actor].replay(chunk, offset):
                self.buffer.add(**call)
            self.step += report.env_steps
            self.actor_steps[report.actor] += report.env_steps
            self.ingested += chunk.rows
            self.bytes_received += chunk.nbytes
            if chunk.rows:
                self.limiter.inserted_now(chunk.rows)  # stored: the learner may sample them
            for episode_return, length in zip(
                report.episode_returns.tolist(), report.episode_lengths.tolist(), strict=True
            ):
                self.episodes += 1
                self.progress.episode(episode_return)
                self.logs.episode(
                    step=self.step, **{"return": episode_return}, length=length, wall_time=self._wall_time()
                )
        clock.lap("buffer")
        return True

    def _close_streams(self, actor: int, what: str) -> None:
        """End the open episodes of ``actor``'s streams (its envs start afresh), and log why."""
        assert self.fleet is not None
        first = actor * self.config.envs_per_actor
        with self.gate.working():
            self.buffer.end_episodes(list(range(first, first + self.config.envs_per_actor)))
            self.readers[actor] = ChunkReader(self.readers[actor].frame_stack)
        restarts, most = self.fleet.restarts[actor], self.config.actor_max_restarts
        print(
            f"\npydqn: actor {actor} {what}; its open episodes are closed in the buffer and Ray restarts "
            f"it (restart {restarts} of actor_max_restarts={most})",
            file=sys.stderr,
            flush=True,
        )

    def _learner_loop(self) -> None:
        config, clock, limiter = self.config, self.learner_clock, self.limiter
        assert self.fleet is not None
        clock.restart()
        while not self._stop.is_set():
            if self._ingest_done.is_set() and limiter.diff - config.batch_size < limiter.centre:
                return  # the actors are done and every update the ratio asks for is made
            try:
                if not limiter.sample(config.batch_size, timeout=POLL_SECONDS):
                    continue
            except RateLimiterClosed:
                return
            clock.lap("waiting")
            with self.gate.working():
                self.learn(clock)
                if self.learner.updates % config.actor_sync_interval == 0:
                    self.fleet.publish(self.learner.online)

    def _guarded(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as error:  # surfaces in run(), after every thread and actor stopped
            self._errors.append(error)
            self._stop.set()
            self.limiter.close()

    def _halt(self, threads: list[threading.Thread]) -> None:
        self._stop.set()
        self.limiter.close()
        self.gate.open_for_good()
        for thread in threads:
            if thread.ident is not None:  # started
                thread.join()
        if self.fleet is not None:
            self.fleet.stop()
        for clock in (self.ingest_clock, self.learner_clock):
            clock.lap("waiting")

    def _close_resources(self) -> None:
        try:
            super()._close_resources()
        finally:
            cluster = getattr(self, "cluster", None)  # None: refused before it connected
            if cluster is not None:
                cluster.close()

    # ---- what it reports ---------------------------------------------------------------------

    def _metric_row(self) -> dict[str, float]:
        row = super()._metric_row()
        now = time.perf_counter()
        since, ingested, received, steps = self._window
        elapsed = max(now - since, 1e-9)
        self._window = (now, self.ingested, self.bytes_received, list(self.actor_steps))
        new = self.ingested - ingested
        frames = frames_per_step(self.config.env_id)
        row.update(
            ingested_per_s=round(new / elapsed, 1),
            bytes_per_transition=round((self.bytes_received - received) / new, 1) if new else float("nan"),
            inserted=self.limiter.inserted,
            sampled=self.limiter.sampled,
            insert_wait_s=round(self.limiter.insert_waits, 3),
            sample_wait_s=round(self.limiter.sample_waits, 3),
            actor_restarts=sum(self.fleet.restarts) if self.fleet else 0,
        )
        for actor, (now_steps, then) in enumerate(zip(self.actor_steps, steps, strict=True)):
            row[f"fps_actor{actor}"] = round((now_steps - then) * frames / elapsed, 1)
        return row

    def _live_detail(self) -> str:
        """The live line's Ape-X figures, averaged over the run so far."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        frames = frames_per_step(self.config.env_id)
        per_actor = [steps * frames / elapsed for steps in self.actor_steps]
        received = self.bytes_received / self.ingested if self.ingested else 0.0
        restarts = sum(self.fleet.restarts) if self.fleet else 0
        return (
            f"{len(per_actor)} actors {min(per_actor):,.0f}-{max(per_actor):,.0f} frames/s | "
            f"in {self.ingested / elapsed:,.0f}/s {received:,.0f} B each | "
            f"waits {self.limiter.insert_waits:.0f}/{self.limiter.sample_waits:.0f} s | restarts {restarts}"
        )
