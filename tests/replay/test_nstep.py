"""n-step returns: windows checked against the pure-Python oracle and by hand."""

import io
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from streams import PADDINGS, StackedEnvs, add_rows, assert_same_batch

import pydqn

ENDS = ["run"] * 6 + ["terminated", "truncated", "both"]


def make_pair(envs: StackedEnvs, capacity: int, n_step: int, gamma: float = 0.9):
    args: dict[str, Any] = dict(
        capacity=capacity,
        obs_shape=envs.obs_shape,
        obs_dtype=envs.dtype,
        frame_stack=envs.k,
        num_envs=envs.num_envs,
        seed=0,
        n_step=n_step,
        gamma=gamma,
    )
    return pydqn.ReplayBuffer(**args), pydqn.PyReplayBuffer(**args)


def assert_same_slots(buf, oracle) -> None:
    """Every stored slot reads the same from both, or is still open in both."""
    assert len(buf) == len(oracle)
    for slot in range(len(buf)):
        try:
            expected = oracle.get([slot])
        except ValueError as error:
            assert "window is not complete yet" in str(error)
            with pytest.raises(
                ValueError,
                match=f"slot {slot} at position 0 holds a transition whose "
                r"\d+-step window is not complete yet",
            ):
                buf.get([slot])
            continue
        assert_same_batch(buf.get([slot]), expected)


@settings(max_examples=60)
@given(
    n_step=st.integers(1, 5),
    capacity=st.integers(1, 30),
    k=st.sampled_from([1, 4]),
    num_envs=st.integers(1, 3),
    padding=st.sampled_from(PADDINGS),
    seed=st.integers(0, 2**16),
    adds=st.integers(1, 70),
)
def test_every_window_matches_the_oracle(n_step, capacity, k, num_envs, padding, seed, adds):
    envs = StackedEnvs(num_envs, (3, 5), k, torch.uint8, padding, repeat_prob=0.2, seed=seed)
    buf, oracle = make_pair(envs, capacity, n_step)
    rng = np.random.default_rng(seed)
    for _ in range(adds):
        env_ids = rng.choice(num_envs, rng.integers(1, num_envs + 1), replace=False)
        slots, oracle_slots = add_rows([buf, oracle], envs, env_ids, rng.choice(ENDS, len(env_ids)), rng)
        assert torch.equal(slots, oracle_slots)
        assert_same_slots(buf, oracle)


def one_episode(n_step=3, gamma=0.5, rewards=(1.0, 2.0, 3.0, 4.0), end="terminated"):
    envs = StackedEnvs(1, (2, 2), 4, torch.uint8, seed=0)
    buf = pydqn.ReplayBuffer(16, envs.obs_shape, frame_stack=4, n_step=n_step, gamma=gamma, seed=0)
    next_obs = []
    for t, reward in enumerate(rewards):
        last = t == len(rewards) - 1
        obs, nxt = envs.step(0, episode_ends=last)
        buf.add(
            obs[None], [0], [reward], nxt[None], [last and end == "terminated"], [last and end == "truncated"]
        )
        next_obs.append(nxt)
    return buf, next_obs


@pytest.mark.parametrize("end", ["terminated", "truncated"])
def test_windows_by_hand(end):
    buf, next_obs = one_episode(end=end)
    batch = buf.get([0, 1, 2, 3])
    # t0: 1 + .5*2 + .25*3; t1: 2 + .5*3 + .25*4; t2 and t3 end with the episode.
    assert batch.reward.tolist() == [2.75, 4.5, 5.0, 4.0]
    assert batch.discount.tolist() == [0.125, 0.125, 0.25, 0.5]
    for row, last in enumerate([2, 3, 3, 3]):
        assert np.array_equal(batch.next_obs[row].numpy(), next_obs[last])
    ended = [False, True, True, True]
    assert batch.terminated.tolist() == [e and end == "terminated" for e in ended]
    assert batch.truncated.tolist() == [e and end == "truncated" for e in ended]


def test_open_windows_are_not_sampled_and_get_says_so():
    envs = StackedEnvs(1, (2, 2), 4, torch.uint8, seed=1)
    buf = pydqn.ReplayBuffer(64, envs.obs_shape, frame_stack=4, n_step=3, gamma=0.9, seed=0)
    rng = np.random.default_rng(0)
    for _step in range(2):
        add_rows([buf], envs, [0], ["run"], rng)
    with pytest.raises(ValueError, match="cannot sample yet: no stored transition has a complete 3-step"):
        buf.sample(4)
    with pytest.raises(ValueError, match="slot 0 at position 0 holds a transition whose 3-step window"):
        buf.get([0])
    for _step in range(10):
        add_rows([buf], envs, [0], ["run"], rng)
    sampled = torch.cat([buf.sample(64).indices for _ in range(20)])
    assert set(sampled.tolist()) == set(range(12 - 2))  # the last two windows are open


def test_save_and_restore_keep_windows_open_and_complete():
    envs = StackedEnvs(2, (3, 5), 4, torch.uint8, seed=2)
    buf, oracle = make_pair(envs, capacity=20, n_step=3)
    rng = np.random.default_rng(2)
    for _ in range(30):
        add_rows([buf, oracle], envs, [0, 1], rng.choice(ENDS, 2), rng)
    file = io.BytesIO()
    torch.save(buf.state_dict(), file)
    file.seek(0)
    restored = pydqn.ReplayBuffer(20, envs.obs_shape, frame_stack=4, num_envs=2, n_step=3, gamma=0.9)
    restored.load_state_dict(torch.load(file, weights_only=True))
    assert_same_slots(restored, oracle)
    assert_same_batch(restored.sample(32), buf.sample(32))
    with pytest.raises(ValueError, match="saved from a buffer with n_step=3, this one has n_step=2"):
        pydqn.ReplayBuffer(
            20, envs.obs_shape, frame_stack=4, num_envs=2, n_step=2, gamma=0.9
        ).load_state_dict(buf.state_dict())


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (dict(n_step=0), ValueError, r"n_step: expected an int in \[1, 64\], got 0"),
        (dict(n_step=2.5), TypeError, "n_step: expected an int"),
        (dict(gamma=1.5), ValueError, r"gamma: expected a float in \[0, 1\], got 1.5"),
    ],
)
def test_bad_n_step_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        pydqn.ReplayBuffer(8, (4,), torch.float32, **kwargs)
