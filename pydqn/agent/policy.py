"""Acting: the epsilon schedule and batched epsilon-greedy action selection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class LinearEpsilon:
    """Epsilon decaying linearly from ``start`` to ``end`` over the first ``fraction`` of
    ``total_steps`` env steps, then held at ``end``."""

    start: float = 1.0
    end: float = 0.01
    fraction: float = 0.1
    total_steps: int = 10_000_000

    def __call__(self, step: int) -> float:
        decay_steps = max(1.0, self.fraction * self.total_steps)
        progress = min(1.0, step / decay_steps)
        return self.start + progress * (self.end - self.start)


def epsilon_greedy(
    q_network: nn.Module,
    obs: np.ndarray | torch.Tensor,
    epsilon: float,
    num_actions: int,
    rng: np.random.Generator,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """One action per env row: greedy under ``q_network`` with probability 1 - epsilon, else uniform.

    ``obs`` has a leading env axis. The network runs once for the whole batch, in inference mode.
    """
    rows = len(obs)
    explore = rng.random(rows) < epsilon
    actions = rng.integers(0, num_actions, rows)
    if not explore.all():
        with torch.inference_mode():
            q = q_network(torch.as_tensor(obs, device=device))
            greedy = q.argmax(dim=1).cpu().numpy()
        actions = np.where(explore, actions, greedy)
    return actions
