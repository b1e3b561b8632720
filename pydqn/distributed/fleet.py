"""`ActorFleet`: the run's Ray actors, each with one `ExperienceActor.collect` request in flight.

The learner process asks each actor for its next chunk with a reference to the newest published
weights (`StoredWeights`: the actor fetches them only when it acts with another version, so a
process that Ray started anew fetches them for the very request it retries), and turns what comes
back into events: a `Delivery` (a report, flagged when it came from a process that replaced a
failed one) or a `Fault`. An actor whose process died is restarted by Ray (``max_restarts``), and
the request in flight goes to the new process (Ray retries it; a request sent to an actor while
it restarts would fail otherwise), so the death shows as a report of a new incarnation. An actor
whose env raised is a `Fault`; it is killed so that Ray restarts it with fresh envs. More than
``actor_max_restarts`` restarts of one actor raise `ActorFailed`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch

from pydqn.distributed.actor import ActorReport, EnvFactory, ExperienceActor
from pydqn.distributed.cluster import import_ray
from pydqn.training.config import TrainConfig


class ActorFailed(ChildProcessError):
    """An actor failed more often than ``actor_max_restarts`` allows, or could not start."""


@dataclass(frozen=True)
class Delivery:
    report: ActorReport
    restarted: bool  # from a process that replaced a failed one no `Fault` reported: envs anew


@dataclass(frozen=True)
class StoredWeights:
    """The online network's state dict in Ray's object store; calling it fetches the weights. Ray
    resolves only the references a call is given directly, so wrapped in this one travels as is."""

    ref: Any

    def __call__(self) -> dict[str, torch.Tensor]:
        return import_ray().get(self.ref)


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
        self._weights: tuple[int, StoredWeights | None] = (-1, None)
        self._incarnation: list[str | None] = [None] * config.actors
        # The incarnation a Fault came from, until a report of its replacement arrives.
        self._faulted: list[str | None] = [None] * config.actors

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def publish(self, network: torch.nn.Module) -> None:
        """Put ``network``'s weights (a CPU copy) in Ray's object store for the actors' next requests."""
        state = {name: tensor.detach().cpu().clone() for name, tensor in network.state_dict().items()}
        self._weights = (self._weights[0] + 1, StoredWeights(self.ray.put(state)))

    def wait_until_placed(self, timeout: float) -> None:
        """Waits for every actor to start; `ActorFailed` when one has not within ``timeout``
        seconds (the cluster's CPUs are taken) or failed to start (its envs raised)."""
        ray = self.ray
        try:
            ray.get([handle.__ray_ready__.remote() for handle in self.handles], timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            free = ray.available_resources().get("CPU", 0)
            raise ActorFailed(
                f"actors: {len(self.handles)} actors did not all start within {timeout:.0f} s; the Ray "
                f"cluster has {free:g} CPUs free (each actor takes one)"
            ) from None
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as error:
            raise ActorFailed(f"actors: an actor could not start: {_first_line(error)}") from None

    def request(self, actor: int, step: int) -> None:
        """Ask ``actor`` for its next chunk, at the run's env step ``step``."""
        version, weights = self._weights
        if weights is None:
            raise RuntimeError("ActorFleet.request: publish the weights before the first request")
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
        """Kill every actor for good (their processes end; pending requests are dropped). Best
        effort: a cluster that is gone has no actors left to kill."""
        self._pending.clear()
        for handle in self.handles:
            try:
                self.ray.kill(handle, no_restart=True)
            except Exception as error:  # the checkpoint that follows matters more
                print(f"pydqn: could not kill an actor ({_first_line(error)})", file=sys.stderr)

    def _outcome(self, ref: Any) -> Delivery | Fault:
        actor = self._pending.pop(ref)
        exceptions = self.ray.exceptions
        try:
            report: ActorReport = self.ray.get(ref)
        except (exceptions.RayActorError, exceptions.RayTaskError) as error:
            return self._fault(actor, error)
        faulted = self._faulted[actor]
        if faulted is not None and report.incarnation != faulted:
            self._faulted[actor] = None  # the replacement a Fault announced
        # A new process that no Fault announced: the old one died and Ray retried the request.
        unannounced = faulted is None and self._incarnation[actor] not in (None, report.incarnation)
        if unannounced:
            self.restarts[actor] += 1
        self._incarnation[actor] = report.incarnation
        return Delivery(report, unannounced)

    def _fault(self, actor: int, error: BaseException) -> Fault:
        self.restarts[actor] += 1
        message = _first_line(error)
        if self.restarts[actor] > self.max_restarts:
            raise ActorFailed(
                f"actor {actor} failed {self.restarts[actor]} times, more than actor_max_restarts="
                f"{self.max_restarts}; the last failure: {message}"
            )
        if isinstance(error, self.ray.exceptions.RayTaskError):
            # Its env raised, the process lives: kill it so that Ray restarts it with fresh envs.
            # (A request reaching it before the kill gets fresh episodes: see ExperienceActor.)
            self.ray.kill(self.handles[actor], no_restart=False)
            self._faulted[actor] = self._incarnation[actor]
        else:
            self._faulted[actor] = ""  # died: whatever reports next is its replacement
        return Fault(actor, message)


def _first_line(error: BaseException) -> str:
    """What Ray reported: a RayTaskError's cause (the exception the actor raised), else the
    message's first line."""
    cause = getattr(error, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
