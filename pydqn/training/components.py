"""The parts a run is built from, made from its configuration: env, learner, replay buffer."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv

from pydqn.agent.learner import DQNLearner
from pydqn.agent.models import make_q_network
from pydqn.envs import is_atari_id, make_env
from pydqn.replay import PyReplayBuffer, ReplayBuffer, ReplayLike
from pydqn.training.config import TrainConfig


def make_run_env(config: TrainConfig, num_envs: int, seed: int, **options: Any) -> VectorEnv:
    """``num_envs`` envs of ``config.env_id`` (with the run's sticky-action setting on Atari)."""
    if is_atari_id(config.env_id):
        options.setdefault("repeat_action_probability", config.repeat_action_probability)
    return make_env(config.env_id, num_envs, seed=seed, **options)


def make_network(config: TrainConfig, env: VectorEnv) -> torch.nn.Module:
    """A fresh Q-network of ``config``'s architecture for ``env``'s spaces."""
    return make_q_network(
        env.single_observation_space,
        env.single_action_space,
        dueling=config.dueling,
        hidden_sizes=config.hidden_sizes,
    )


def make_learner(config: TrainConfig, env: VectorEnv, device: torch.device | str) -> DQNLearner:
    """The learner of ``config`` with a fresh Q-network for ``env``'s spaces, on ``device``."""
    return DQNLearner(make_network(config, env), config.learner, device)


def frame_stack_of(space: gym.Space) -> int:
    """Frames per observation of a run's env: axis 0 of (k, H, W) Atari stacks, else 1."""
    assert space.shape is not None
    return space.shape[0] if len(space.shape) == 3 else 1


def make_buffer(config: TrainConfig, env: VectorEnv, device: torch.device) -> ReplayLike:
    """The configured replay buffer (``config.replay``) for ``env``'s observations, living on
    ``device`` (see `pydqn.agent.placement.replay_device`; the Python buffer is host-only)."""
    space = env.single_observation_space
    assert space.shape is not None and space.dtype is not None
    args: dict[str, Any] = dict(
        capacity=config.buffer_size,
        obs_shape=space.shape,
        obs_dtype=torch.from_numpy(np.zeros(0, space.dtype)).dtype,
        frame_stack=frame_stack_of(space),
        num_envs=config.replay_streams,
        seed=config.seed,
        n_step=config.n_step,
        gamma=config.learner.gamma,
        prioritized=config.prioritized,
        alpha=config.priority_alpha,
    )
    buffer_class = PyReplayBuffer if config.replay == "python" else ReplayBuffer
    return buffer_class(**args, device=device)
