"""Q-networks: the Nature CNN's exact architecture, the dueling combination, model choice."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from pydqn.agent.models import MLP, NatureCNN, make_q_network

FRAMES = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)


def test_nature_cnn_matches_the_paper():
    model = NatureCNN(num_actions=6)
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [
        (32, 4, 8, 8),
        (32,),
        (64, 32, 4, 4),
        (64,),
        (64, 64, 3, 3),
        (64,),
        (512, 3136),
        (512,),
        (6, 512),
        (6,),
    ]
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(4, 4), (2, 2), (1, 1)]
    per_layer = [
        32 * 4 * 8 * 8 + 32,
        64 * 32 * 4 * 4 + 64,
        64 * 64 * 3 * 3 + 64,
        3136 * 512 + 512,
        512 * 6 + 6,
    ]
    assert sum(p.numel() for p in model.parameters()) == sum(per_layer) == 1_687_206


def test_uint8_frames_are_scaled_by_1_over_255_inside():
    model = NatureCNN(num_actions=4)
    frames = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    assert torch.allclose(model(frames), model(frames.float() / 255.0))
    assert model(frames).shape == (3, 4)


@pytest.mark.parametrize("model", [NatureCNN(5, dueling=True), MLP(8, 5, dueling=True)])
def test_dueling_is_value_plus_centred_advantage(model):
    x = (
        torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
        if isinstance(model, NatureCNN)
        else torch.randn(2, 8)
    )
    q = model(x)
    features = model.torso(x.float() / 255.0 if x.dtype == torch.uint8 else x)
    value, advantage = model.head.value(features), model.head.advantage(features)
    assert torch.allclose(q, value + advantage - advantage.mean(dim=1, keepdim=True), atol=1e-6)
    assert torch.allclose(q.mean(dim=1, keepdim=True), value, atol=1e-5)


def test_make_q_network_picks_by_observation_space():
    assert isinstance(make_q_network(FRAMES, gym.spaces.Discrete(6)), NatureCNN)
    mlp = make_q_network(gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Discrete(2))
    assert isinstance(mlp, MLP) and mlp(torch.zeros(7, 4)).shape == (7, 2)


@pytest.mark.parametrize(
    "obs,act,message",
    [
        (FRAMES, gym.spaces.Box(-1, 1, (2,)), "action_space: expected Discrete"),
        (gym.spaces.Discrete(16), gym.spaces.Discrete(4), "observation_space: expected a Box"),
        (gym.spaces.Box(0, 255, (4, 64, 64), np.uint8), gym.spaces.Discrete(4), "expects (k, 84, 84) frames"),
        (
            gym.spaces.Box(0, 1, (3, 5), np.float32),
            gym.spaces.Discrete(4),
            "expected (k, 84, 84) uint8 frames or a 1-D",
        ),
    ],
)
def test_unsupported_spaces(obs, act, message):
    with pytest.raises(ValueError) as info:
        make_q_network(obs, act)
    assert message in str(info.value)
