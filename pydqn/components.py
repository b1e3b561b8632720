"""The parts a run is built from, made from its configuration: env, learner, replay buffer."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pydqn.config import TrainConfig
from pydqn.dqn import DQNLearner
from pydqn.envs import make_env
from pydqn.models import make_q_network
from pydqn.py_replay import PyReplayBuffer
from pydqn.replay import ReplayBuffer


def resolve_device(name: str) -> torch.device:
    """The run's device; a CUDA one with its index, as the tensors made there report it."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def is_atari(config: TrainConfig) -> bool:
    return config.env_id.startswith("ALE/")


def frames_per_step(config: TrainConfig) -> int:
    """Emulator frames per env step: Atari skips 4 frames per agent step."""
    return 4 if is_atari(config) else 1


def make_run_env(config: TrainConfig, num_envs: int, seed: int, **options: Any):
    if is_atari(config):
        options.setdefault("repeat_action_probability", config.repeat_action_probability)
    return make_env(config.env_id, num_envs, seed=seed, **options)


def make_learner(config: TrainConfig, env, device: torch.device) -> DQNLearner:
    network = make_q_network(env.single_observation_space, env.single_action_space,
                             dueling=config.dueling, hidden_sizes=config.hidden_sizes)
    return DQNLearner(network, config.learner, device)


def make_buffer(config: TrainConfig, env, device: torch.device | None = None
                ) -> ReplayBuffer | PyReplayBuffer:
    """The configured replay buffer (``config.replay``) for ``env``'s observations; with a CUDA
    ``device`` the C++ buffer lives there, so batches never cross PCIe."""
    space = env.single_observation_space
    frame_stack = space.shape[0] if len(space.shape) == 3 else 1
    buffer_class = ReplayBuffer if config.replay == "cpp" else PyReplayBuffer
    options = {}
    if buffer_class is ReplayBuffer and device is not None and device.type == "cuda":
        options["device"] = device
    return buffer_class(config.buffer_size, space.shape, torch.from_numpy(np.zeros(0, space.dtype)).dtype,
                        frame_stack=frame_stack, num_envs=config.num_envs, seed=config.seed,
                        n_step=config.n_step, gamma=config.learner.gamma,
                        prioritized=config.prioritized, alpha=config.priority_alpha, **options)
