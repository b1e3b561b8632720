"""`PrioritizedReplayBuffer`: proportional prioritized replay (Schaul et al. 2016) for SB3."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from stable_baselines3.common.vec_env import VecNormalize

from pydqn.integrations.sb3.buffer import ReplayBuffer
from pydqn.replay import checks
from pydqn.replay.protocol import IntsLike, RealsLike
from pydqn.training.config import TrainConfig


def trainer_default(name: str) -> Any:
    """The default of pydqn's trainer's setting ``name`` (its alpha, beta and epsilon are these')."""
    return TrainConfig.__dataclass_fields__[name].default


class PrioritizedReplayBufferSamples(NamedTuple):
    """SB3's ``ReplayBufferSamples`` fields, then what prioritized training needs: ``weights``
    ``(B, 1)`` float32, the importance-sampling weights (at most 1), and ``transition_ids``
    ``(B,)`` int64, to hand back with the batch's new priorities."""

    observations: torch.Tensor
    actions: torch.Tensor
    next_observations: torch.Tensor
    dones: torch.Tensor
    rewards: torch.Tensor
    discounts: torch.Tensor | None
    weights: torch.Tensor
    transition_ids: torch.Tensor


class PrioritizedReplayBuffer(ReplayBuffer):
    """`ReplayBuffer` that samples transition i with probability p_i^alpha / sum_j p_j^alpha.

    New transitions get the largest priority given so far; ``update_priorities`` sets sampled
    ones' (``|TD error| + eps``). `pydqn.integrations.sb3.DQN` does both, weighting its loss and
    annealing beta to 1; SB3's own DQN would leave every priority at the maximum.

    Args: those of `ReplayBuffer`, and through ``replay_buffer_kwargs``: ``alpha`` (how much
    priorities count, 0.6 by default as in pydqn's trainer) and ``beta`` (the importance-sampling
    exponent `sample` uses when given none; `DQN` sets it every update).
    """

    def __init__(
        self,
        *args: Any,
        alpha: float = trainer_default("priority_alpha"),
        beta: float = trainer_default("priority_beta"),
        **kwargs: Any,
    ) -> None:
        self.alpha = checks.check_fraction("alpha", alpha)
        self.beta = checks.check_fraction("beta", beta)
        super().__init__(*args, **kwargs)

    def sample(  # type: ignore[override]
        self, batch_size: int, env: VecNormalize | None = None, *, beta: float | None = None
    ) -> PrioritizedReplayBufferSamples:
        """A prioritized batch with its ``weights`` for ``beta`` (default: the buffer's ``beta``)."""
        batch = self._mover(self._opened().sample(batch_size, beta=self.beta if beta is None else beta))
        return PrioritizedReplayBufferSamples(
            *self._samples(batch, env),
            weights=batch.weights.unsqueeze(1),
            transition_ids=batch.transition_ids,
        )

    def update_priorities(self, transition_ids: IntsLike, priorities: RealsLike) -> int:
        """Sets the priorities (finite, > 0) of sampled transitions; see
        `pydqn.ReplayBuffer.update_priorities`. Returns how many were applied."""
        return self._opened().update_priorities(transition_ids, priorities)

    def _core_extras(self) -> dict[str, Any]:
        return {"prioritized": True, "alpha": self.alpha}
