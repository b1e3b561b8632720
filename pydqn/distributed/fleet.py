"""`ActorFleet`: the run's Ray actors, each with one `ExperienceActor.collect` request in flight.

The learner process asks each actor for its next chunk, hands it the newest published weights
(only when it holds older ones), and turns what comes back into events: a `Delivery` (a report,
flagged when it came from a process that replaced a failed one) or a `Fault`. An actor whose
process died is restarted by Ray (``max_restarts``), and the request in flight goes to the new
process (Ray retries it; a request sent to an actor while it restarts would fail otherwise), so
the death shows as a report of a new incarnation. An actor whose env raised is a `Fault`; it is
killed so that Ray restarts it with fresh envs. More than ``actor_max_restarts`` restarts of one
actor raise `ActorFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch

from pydqn.distributed.actor import ActorReport, EnvFactory, ExperienceActor
from pydqn.training.config import TrainConfig


class ActorFailed(RuntimeError):
    """An actor failed more often than ``actor_max_restarts`` allows."""


@dataclass(frozen=True)
class Delivery:
    report: ActorReport
    restarted: bool  # from a process that replaced a failed one no `Fault` reported: envs anew


@dataclass(frozen=True)
class Fault:
    actor: int
    error: str  # what Ray reported, first line


class ActorFleet:
    """``config.actors`` actors (one CPU each) on the connected Ray cluster."""

    def __init__(self, ray: ModuleType, config: TrainConfig, env_factory: EnvFactory | None = None) -> None:
        self.ray, self.max_restarts = ray, config.actor_max_restarts
        remote_class = ray.remote(num_cpus=1, max_restarts=config.actor_max_restarts, max_task_retries=-1)(
            ExperienceActor
        )
        self.handles = [remote_class.remote(config, i, env_factory) for i in range(config.actors)]
        self.restarts = [0] * config.actors
        self._pending: dict[Any, int] = {}  # request -> actor
        self._weights: tuple[int, Any] = (-1, None)  # version, object ref
        self._held = [-1] * config.actors  # the weights version each actor acts with, as reported
        self._incarnation: list[str | None] = [None] * config.actors
        self._faulted = [False] * config.actors  # a fault was seen; its replacement is expected

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def publish(self, network: torch.nn.Module) -> None:
        """Put ``network``'s weights (a CPU copy) in Ray's object store for the actors' next requests."""
        state = {name: tensor.detach().cpu().clone() for name, tensor in network.state_dict().items()}
        self._weights = (self._weights[0] + 1, self.ray.put(state))

    def request(self, actor: int, step: int) -> None:
        """Ask ``actor`` for its next chunk, at the run's env step ``step``."""
        version, ref = self._weights
        weights = ref if self._held[actor] != version else None  # Ray hands the actor the value
        self._pending[self.handles[actor].collect.remote(step, weights, version)] = actor

    def wait(self, timeout: float) -> list[Delivery | Fault]:
        """What the requests that ended within ``timeout`` seconds brought (none: an empty list)."""
        if not self._pending:
            return []
        ready, _ = self.ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(list(self._pending), num_returns=len(self._pending), timeout=0)
        return [self._outcome(ref) for ref in ready]

    def stop(self) -> None:
        """Kill every actor for good (their processes end; pending requests are dropped)."""
        self._pending.clear()
        for handle in self.handles:
            self.ray.kill(handle, no_restart=True)

    def _outcome(self, ref: Any) -> Delivery | Fault:
        actor = self._pending.pop(ref)
        exceptions = self.ray.exceptions
        try:
            report: ActorReport = self.ray.get(ref)
        except (exceptions.RayActorError, exceptions.RayTaskError) as error:
            return self._fault(actor, error)
        # A new process that no Fault announced: the old one died between requests.
        unannounced = self._incarnation[actor] not in (None, report.incarnation) and not self._faulted[actor]
        if unannounced:
            self.restarts[actor] += 1
        self._incarnation[actor], self._faulted[actor] = report.incarnation, False
        self._held[actor] = report.weights_version
        return Delivery(report, unannounced)

    def _fault(self, actor: int, error: BaseException) -> Fault:
        self.restarts[actor] += 1
        self._held[actor] = -1  # a new process acts with its initial weights until sent ours
        cause = getattr(error, "cause", None)  # a RayTaskError's: the exception the actor raised
        if cause is not None:
            message = f"{type(cause).__name__}: {cause}"
        else:
            message = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if self.restarts[actor] > self.max_restarts:
            raise ActorFailed(
                f"actor {actor} failed {self.restarts[actor]} times, more than actor_max_restarts="
                f"{self.max_restarts}; the last failure: {message}"
            )
        if isinstance(error, self.ray.exceptions.RayTaskError):
            # Its env raised, the process lives: kill it so that Ray restarts it with fresh envs.
            self.ray.kill(self.handles[actor], no_restart=False)
        self._faulted[actor] = True
        return Fault(actor, message)
