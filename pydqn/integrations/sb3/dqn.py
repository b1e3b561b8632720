"""`DQN`: SB3's DQN on pydqn's replay, with prioritized replay when its buffer is prioritized."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import dqn

from pydqn.integrations.sb3.buffer import ReplayBuffer
from pydqn.integrations.sb3.prioritized import PrioritizedReplayBuffer, trainer_default
from pydqn.replay import checks
from pydqn.training.config import annealed_beta


class DQN(dqn.DQN):
    """SB3's ``DQN``, whose replay is pydqn's `ReplayBuffer` unless ``replay_buffer_class`` says
    otherwise, and which trains from a `PrioritizedReplayBuffer` the prioritized way: each sample's
    Huber loss weighted by its importance weight, and |TD error| + ``priority_epsilon`` fed back as
    its priority, with beta annealed linearly from ``priority_beta`` to 1 over ``learn``'s
    ``total_timesteps`` (as pydqn's trainer does over its schedule). Everything else is SB3's.

    ``n_steps > 1`` configures pydqn's buffer (its ``n_steps`` and ``gamma``), where SB3 would
    otherwise ignore it for a custom buffer class.

    Args: SB3's DQN's, and ``priority_beta`` (0.4) and ``priority_epsilon`` (1e-6), pydqn's
    trainer's defaults.
    """

    def __init__(
        self,
        *args: Any,
        priority_beta: float = trainer_default("priority_beta"),
        priority_epsilon: float = trainer_default("priority_epsilon"),
        **kwargs: Any,
    ) -> None:
        self.priority_beta = checks.check_fraction("priority_beta", priority_beta)
        self.priority_epsilon = checks.check_fraction("priority_epsilon", priority_epsilon)
        if self.priority_epsilon == 0:
            raise ValueError(
                "priority_epsilon: expected a value in (0, 1] (a TD error of 0 needs a priority > 0), got 0"
            )
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        if self.replay_buffer_class is None and isinstance(
            self.observation_space, spaces.Box | spaces.Discrete
        ):
            self.replay_buffer_class = ReplayBuffer
        if self.n_steps == 1 or not (
            self.replay_buffer_class is not None and issubclass(self.replay_buffer_class, ReplayBuffer)
        ):
            super()._setup_model()
            return
        self.replay_buffer_kwargs = {
            "n_steps": self.n_steps,
            "gamma": self.gamma,
            **self.replay_buffer_kwargs,
        }
        # SB3 warns that n_steps is ignored with a custom buffer class: pydqn's takes it above.
        n_steps, self.n_steps = self.n_steps, 1
        try:
            super()._setup_model()
        finally:
            self.n_steps = n_steps

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        buffer = self.replay_buffer
        if not isinstance(buffer, PrioritizedReplayBuffer):
            super().train(gradient_steps, batch_size)
            return
        # SB3's DQN.train (stable_baselines3/dqn/dqn.py), with each sample's importance weight on
        # its loss and its |TD error| fed back as its priority.
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        beta = annealed_beta(self.priority_beta, 1.0 - self._current_progress_remaining)
        losses = []
        for _ in range(gradient_steps):
            replay_data = buffer.sample(batch_size, env=self._vec_normalize_env, beta=beta)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            with torch.no_grad():
                next_q_values = self.q_net_target(replay_data.next_observations).max(dim=1).values
                target_q_values = replay_data.rewards + (
                    1 - replay_data.dones
                ) * discounts * next_q_values.reshape(-1, 1)
            current_q_values = torch.gather(
                self.q_net(replay_data.observations), dim=1, index=replay_data.actions.long()
            )
            elementwise = F.smooth_l1_loss(current_q_values, target_q_values, reduction="none")
            loss = (replay_data.weights * elementwise).mean()
            losses.append(loss.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
            td_errors = (current_q_values - target_q_values).detach().abs().reshape(-1)
            buffer.update_priorities(replay_data.transition_ids, td_errors + self.priority_epsilon)
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", np.mean(losses))
        self.logger.record("train/priority_beta", beta)
