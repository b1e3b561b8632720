"""Each actor's exploration rate: Ape-X's fixed spread of rates, or the run's epsilon schedule."""

from __future__ import annotations

from pydqn.agent.policy import LinearEpsilon
from pydqn.training.config import TrainConfig


def apex_epsilon(actor: int, actors: int, base: float, alpha: float) -> float:
    """Ape-X's rate for ``actor`` of ``actors`` (Horgan et al. 2018): base^(1 + alpha * i / (N - 1)),
    from ``base`` for actor 0 down to base^(1 + alpha) for the last; ``base`` for a single actor."""
    return base ** (1.0 + alpha * actor / (actors - 1)) if actors > 1 else base


class ActorExploration:
    """The epsilon actor ``actor`` acts with at env step ``step`` of the run (`TrainConfig`'s
    ``actor_exploration``: ``apex`` rates stay fixed, ``schedule`` follows the run's schedule)."""

    def __init__(self, config: TrainConfig, actor: int) -> None:
        self._fixed = (
            apex_epsilon(actor, config.actors, config.actor_epsilon, config.actor_epsilon_alpha)
            if config.actor_exploration == "apex"
            else None
        )
        self._schedule = LinearEpsilon(
            config.epsilon_start, config.epsilon_end, config.epsilon_fraction, config.schedule_length
        )

    def __call__(self, step: int) -> float:
        return self._schedule(step) if self._fixed is None else self._fixed
