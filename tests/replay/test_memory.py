"""Each frame is stored once: bytes per transition at Atari shapes, against the oracle's."""

import numpy as np
import torch
from streams import StackedEnvs, add_rows

import pydqn

FRAME_BYTES = 84 * 84


def fill_atari_like(buffers, capacity, episode_length, num_envs=1, seed=0):
    envs = StackedEnvs(num_envs, (84, 84), 4, torch.uint8, padding="repeat", seed=seed)
    rng = np.random.default_rng(seed)
    for step in range(capacity // num_envs + episode_length):
        end = "terminated" if step % episode_length == episode_length - 1 else "run"
        add_rows(buffers, envs, range(num_envs), [end] * num_envs, rng)


def test_atari_bytes_per_transition_once_full():
    capacity = 4000
    buf = pydqn.ReplayBuffer(capacity, (4, 84, 84), frame_stack=4, seed=0)
    fill_atari_like([buf], capacity, episode_length=200)
    assert len(buf) == capacity
    per_transition = buf.nbytes / capacity
    # One new 7,056-byte frame per transition, one padding frame per episode, ~40 bytes of record.
    assert FRAME_BYTES <= per_transition <= 7200, per_transition


def test_atari_bytes_per_transition_with_several_envs():
    capacity = 8000
    buf = pydqn.ReplayBuffer(capacity, (4, 84, 84), frame_stack=4, num_envs=4, seed=0)
    fill_atari_like([buf], capacity, episode_length=250, num_envs=4)
    assert FRAME_BYTES <= buf.nbytes / capacity <= 7200, buf.nbytes / capacity


def test_at_most_a_quarter_of_the_pure_python_buffer():
    capacity = 1000
    buf = pydqn.ReplayBuffer(capacity, (4, 84, 84), frame_stack=4, seed=0)
    oracle = pydqn.PyReplayBuffer(capacity, (4, 84, 84), frame_stack=4, seed=0)
    fill_atari_like([buf, oracle], capacity, episode_length=200)
    assert oracle.nbytes >= 2 * 4 * FRAME_BYTES * capacity  # full obs and next_obs copies
    assert buf.nbytes <= oracle.nbytes / 4


def test_memory_grows_with_use_not_capacity():
    buf = pydqn.ReplayBuffer(1_000_000, (4, 84, 84), frame_stack=4, seed=0)
    empty = buf.nbytes
    assert empty < 64 * 1_000_000  # records and bookkeeping only, no frames yet
    fill_atari_like([buf], 100, episode_length=50)
    assert FRAME_BYTES * 100 <= buf.nbytes - empty <= 2 * FRAME_BYTES * 100 + 64 * FRAME_BYTES
