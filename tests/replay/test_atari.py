"""The exactness check fed by a real ALE/Pong-v5 with gymnasium's Atari preprocessing."""

from typing import Any

import ale_py
import gymnasium as gym
import numpy as np
import pytest
import torch
from streams import assert_same_batch

import pydqn


def make_pong(seed: int, episode_steps: int):
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TimeLimit

    gym.register_envs(ale_py)
    env = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0)
    env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True)
    env = TimeLimit(FrameStackObservation(env, 4), max_episode_steps=episode_steps)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


@pytest.mark.slow
def test_pong_transitions_round_trip_bit_exact():
    # Short, different time limits make both envs cross episode boundaries, out of step.
    envs = [make_pong(seed=0, episode_steps=45), make_pong(seed=1, episode_steps=70)]
    obs = [env.reset(seed=i)[0] for i, env in enumerate(envs)]
    args: dict[str, Any] = dict(capacity=150, obs_shape=(4, 84, 84), frame_stack=4, num_envs=2, seed=0)
    buf, oracle = pydqn.ReplayBuffer(**args), pydqn.PyReplayBuffer(**args)
    rng = np.random.default_rng(0)
    episodes_ended = 0
    for step in range(400):
        env_ids = [step % 2] if rng.random() < 0.3 else [0, 1]  # sometimes only one env steps
        rows = []
        for e in env_ids:
            action = envs[e].action_space.sample()
            next_obs, reward, terminated, truncated, _ = envs[e].step(action)
            rows.append((obs[e], action, reward, next_obs, terminated, truncated))
            obs[e] = envs[e].reset()[0] if terminated or truncated else next_obs
            episodes_ended += terminated or truncated
        columns = [np.stack([np.asarray(r[i]) for r in rows]) for i in range(6)]
        obs_rows, actions, rewards, next_rows, terminated_rows, truncated_rows = columns
        transitions = (obs_rows, actions, rewards, next_rows, terminated_rows, truncated_rows)
        slots = buf.add(*transitions, env_ids=env_ids)
        assert torch.equal(slots, oracle.add(*transitions, env_ids=env_ids))
        if step % 25 == 24:
            everything = torch.arange(len(buf))
            assert_same_batch(buf.get(everything), oracle.get(everything))
    assert episodes_ended >= 8 and len(buf) == 150
    assert buf.nbytes <= oracle.nbytes / 4
    batch = buf.sample(256)
    assert_same_batch(batch, oracle.get(batch.indices))
