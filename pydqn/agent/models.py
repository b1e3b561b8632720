"""Q-networks: the Nature CNN for Atari frames and an MLP for vector observations, each with a
plain or dueling head; `make_q_network` picks one from the environment's spaces."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import torch
from torch import nn


class QHead(nn.Module):
    """Features to one Q value per action.

    Plain: ``[Linear(hidden), ReLU] -> Linear(num_actions)``. Dueling (Wang et al. 2016): a value
    stream and an advantage stream of the same shape, combined as ``V + A - mean(A)``.
    ``hidden=None`` drops the hidden layer (the MLP torso already has its own).
    """

    def __init__(self, in_features: int, num_actions: int, hidden: int | None, dueling: bool) -> None:
        super().__init__()
        self.dueling = dueling
        self.advantage = self._stream(in_features, num_actions, hidden)
        self.value = self._stream(in_features, 1, hidden) if dueling else None

    @staticmethod
    def _stream(in_features: int, outputs: int, hidden: int | None) -> nn.Sequential:
        if hidden is None:
            return nn.Sequential(nn.Linear(in_features, outputs))
        return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        advantage = self.advantage(features)
        if self.value is None:
            return advantage
        return self.value(features) + advantage - advantage.mean(dim=1, keepdim=True)


class NatureCNN(nn.Module):
    """The Q-network of Mnih et al. 2015: (B, 4, 84, 84) frames to (B, num_actions) Q values.

    Conv 32x8x8 stride 4, conv 64x4x4 stride 2, conv 64x3x3 stride 1, fully connected 512, linear to
    the actions, ReLUs between. uint8 input is scaled by 1/255 here, so the replay buffer and the
    actor pass raw frames; float input is taken as already scaled.
    """

    def __init__(self, num_actions: int, in_channels: int = 4, dueling: bool = False) -> None:
        super().__init__()
        self.torso = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.head = QHead(64 * 7 * 7, num_actions, hidden=512, dueling=dueling)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dtype == torch.uint8:
            frames = frames.float() / 255.0
        return self.head(self.torso(frames))


class MLP(nn.Module):
    """A Q-network for vector observations: (B, obs_dim) float32 to (B, num_actions)."""

    def __init__(
        self, obs_dim: int, num_actions: int, hidden_sizes: Sequence[int] = (120, 84), dueling: bool = False
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.torso = nn.Sequential(*layers)
        self.head = QHead(width, num_actions, hidden=None, dueling=dueling)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.torso(obs.float()))


def make_q_network(
    observation_space: gym.Space,
    action_space: gym.Space,
    dueling: bool = False,
    hidden_sizes: Sequence[int] = (120, 84),
) -> nn.Module:
    """The Q-network for one env's spaces: NatureCNN for stacked uint8 frames ``(k, H, W)``, MLP
    for flat vectors; actions must be Discrete."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError(f"action_space: expected Discrete, got {action_space}")
    num_actions = int(action_space.n)
    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError(f"observation_space: expected a Box (frames or a vector), got {observation_space}")
    shape = observation_space.shape
    if len(shape) == 3 and observation_space.dtype == "uint8":
        if shape[1:] != (84, 84):
            raise ValueError(f"observation_space: NatureCNN expects (k, 84, 84) frames, got {shape}")
        return NatureCNN(num_actions, in_channels=shape[0], dueling=dueling)
    if len(shape) == 1:
        return MLP(shape[0], num_actions, hidden_sizes, dueling)
    raise ValueError(
        f"observation_space: expected (k, 84, 84) uint8 frames or a 1-D vector, got "
        f"shape {shape} of {observation_space.dtype}"
    )
