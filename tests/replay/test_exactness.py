"""ReplayBuffer returns, bit for bit, what was added: checked against the pure-Python oracle."""

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from streams import PADDINGS, StackedEnvs, add_rows, assert_same_batch, draw_adds

import pydqn


def make_pair(envs: StackedEnvs, capacity: int, seed: int = 0):
    args: dict[str, Any] = dict(
        capacity=capacity,
        obs_shape=envs.obs_shape,
        obs_dtype=envs.dtype,
        frame_stack=envs.k,
        num_envs=envs.num_envs,
        seed=seed,
    )
    return pydqn.ReplayBuffer(**args), pydqn.PyReplayBuffer(**args)


def assert_all_slots_match(buf, oracle) -> None:
    assert len(buf) == len(oracle)
    slots = torch.arange(len(buf))
    assert_same_batch(buf.get(slots), oracle.get(slots))


@settings(max_examples=80)
@given(
    capacity=st.integers(1, 48),
    k=st.sampled_from([1, 4]),
    num_envs=st.integers(1, 3),
    dtype=st.sampled_from([torch.uint8, torch.float32]),
    padding=st.sampled_from(PADDINGS),
    repeat_prob=st.sampled_from([0.0, 0.5]),
    data=st.data(),
)
def test_every_stored_slot_matches_the_oracle(capacity, k, num_envs, dtype, padding, repeat_prob, data):
    seed = data.draw(st.integers(0, 2**16), label="seed")
    envs = StackedEnvs(num_envs, (3, 5), k, dtype, padding, repeat_prob, seed=seed)
    buf, oracle = make_pair(envs, capacity)
    rng = np.random.default_rng(seed)
    for env_ids, ends in draw_adds(data, num_envs, capacity):
        slots, oracle_slots = add_rows([buf, oracle], envs, env_ids, ends, rng)
        assert torch.equal(slots, oracle_slots)
        assert_all_slots_match(buf, oracle)
    batch = buf.sample(64)
    assert_same_batch(batch, oracle.get(batch.indices))


@pytest.mark.parametrize("k", [1, 4])
def test_episodes_of_length_one_and_wraparound(k):
    envs = StackedEnvs(2, (4, 4), k, torch.uint8, padding="distinct", seed=1)
    buf, oracle = make_pair(envs, capacity=7)
    rng = np.random.default_rng(1)
    for step in range(50):
        ends = ["terminated" if step % 2 else "truncated", "both" if step % 3 == 0 else "run"]
        add_rows([buf, oracle], envs, [0, 1], ends, rng)
        assert_all_slots_match(buf, oracle)


def test_more_rows_than_capacity_keeps_the_newest():
    envs = StackedEnvs(5, (2, 2), 4, torch.uint8, seed=2)
    buf, oracle = make_pair(envs, capacity=3)
    rng = np.random.default_rng(2)
    slots, _ = add_rows([buf, oracle], envs, range(5), ["run"] * 5, rng)
    assert slots.tolist() == [0, 1, 2, 0, 1]
    assert_all_slots_match(buf, oracle)
    add_rows([buf, oracle], envs, range(5), ["run"] * 5, rng)
    assert_all_slots_match(buf, oracle)


def test_inputs_as_tensors_on_cpu_numpy_and_lists_agree():
    envs = StackedEnvs(1, (2, 3), 4, torch.float32, seed=3)
    buf, oracle = make_pair(envs, capacity=4)
    obs, next_obs = envs.step(0, episode_ends=False)
    buf.add(
        torch.from_numpy(obs[None]),
        torch.tensor([3], dtype=torch.int32),
        [0.5],
        torch.from_numpy(next_obs[None]),
        torch.tensor([False]),
        [False],
    )
    oracle.add(obs[None], [3], np.array([0.5], dtype=np.float64), next_obs[None], [False], [False])
    assert_all_slots_match(buf, oracle)


def test_every_input_form_reads_the_same():
    """numpy (read-only, strided, any int/real dtype), tensors (strided), and lists agree."""
    envs = StackedEnvs(2, (2, 3), 4, torch.uint8, seed=5)
    buf, oracle = make_pair(envs, capacity=16)
    for form in range(4):
        rows = [envs.step(e, episode_ends=False) for e in (0, 1)]
        obs, next_obs = np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])
        action, reward = np.array([form, 3]), np.array([0.25, -form], dtype=np.float64)
        args: tuple[Any, ...]
        if form == 0:
            obs.flags.writeable = next_obs.flags.writeable = False
            args = (obs, action.astype(np.int8), reward, next_obs, np.array([False, False]), [False, False])
        elif form == 1:
            wide = np.stack([obs, obs], axis=-1)[..., 0]  # same values, not C-contiguous
            args = (wide, action.tolist(), reward.tolist(), next_obs, [False, False], [False, False])
        elif form == 2:
            args = (
                torch.from_numpy(obs).transpose(2, 3).contiguous().transpose(2, 3),
                torch.from_numpy(action).int(),
                torch.from_numpy(reward).half().float(),
                torch.from_numpy(next_obs),
                torch.tensor([False, False]),
                torch.tensor([False, False]),
            )
        else:
            args = (obs, action, reward.astype(np.float32), next_obs, np.zeros(2, bool), np.zeros(2, bool))
        if form == 1:
            assert not wide.flags.c_contiguous
        buf.add(*args, env_ids=np.array([0, 1], dtype=np.int32))
        oracle.add(obs, action, reward, next_obs, [False, False], [False, False])
    assert_all_slots_match(buf, oracle)


def test_unusual_numpy_layouts_read_correctly():
    """Reversed (negative strides), byte-swapped, unaligned and non-0/1 bool arrays."""
    envs = StackedEnvs(1, (2, 3), 4, torch.uint8, seed=6)
    buf, oracle = make_pair(envs, capacity=8)
    obs, next_obs = envs.step(0, episode_ends=False)
    reversed_obs = np.ascontiguousarray(obs[None][:, ::-1])[:, ::-1]  # same values, negative strides
    raw = np.zeros(5, dtype=np.uint8)
    unaligned_reward = raw[1:5].view(np.float32)  # misaligned by one byte
    unaligned_reward[0] = 1.5
    big_endian_action = np.array([7], dtype=">u4")  # unsigned and byte-swapped
    two_as_bool = np.array([2], dtype=np.uint8).view(np.bool_)  # not 0/1 underneath
    buf.add(reversed_obs, big_endian_action, unaligned_reward, next_obs[None], two_as_bool, np.array([False]))
    oracle.add(obs[None], [7], [1.5], next_obs[None], [True], [False])
    assert_all_slots_match(buf, oracle)


def test_memory_stays_bounded_with_length_one_episodes():
    """The worst case for deduplication (k+1 new frames per transition) still recycles frames."""
    envs = StackedEnvs(2, (8, 8), 4, torch.uint8, padding="distinct", seed=4)
    buf, _ = make_pair(envs, capacity=32)
    rng = np.random.default_rng(4)
    for _ in range(40):
        add_rows([buf], envs, [0, 1], ["terminated", "terminated"], rng)
    after_fill = buf.nbytes
    for _ in range(400):
        add_rows([buf], envs, [0, 1], ["terminated", "terminated"], rng)
    assert buf.nbytes == after_fill
