"""ReplayBuffer.state_dict / load_state_dict: a restored buffer is the saved one, bit for bit."""

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from streams import PADDINGS, StackedEnvs, add_rows, assert_same_batch

import pydqn

ENDS = ["run"] * 6 + ["terminated", "truncated", "both"]


def buffer_for(envs: StackedEnvs, capacity: int, seed: int | None = 0) -> pydqn.ReplayBuffer:
    return pydqn.ReplayBuffer(
        capacity, envs.obs_shape, envs.dtype, frame_stack=envs.k, num_envs=envs.num_envs, seed=seed
    )


def through_file(state: dict) -> dict:
    """What torch.save writes and a weights-only torch.load reads back."""
    file = io.BytesIO()
    torch.save(state, file)
    file.seek(0)
    return torch.load(file, weights_only=True)


def fill(buffers, envs: StackedEnvs, adds: int, rng: np.random.Generator) -> None:
    for _ in range(adds):
        env_ids = rng.choice(envs.num_envs, rng.integers(1, envs.num_envs + 1), replace=False)
        add_rows(buffers, envs, env_ids, rng.choice(ENDS, len(env_ids)), rng)


@settings(max_examples=40)
@given(
    capacity=st.integers(1, 40),
    k=st.sampled_from([1, 4]),
    num_envs=st.integers(1, 3),
    dtype=st.sampled_from([torch.uint8, torch.float32]),
    padding=st.sampled_from(PADDINGS),
    adds=st.integers(0, 100),
    seed=st.integers(0, 2**16),
)
def test_restored_buffer_holds_samples_and_continues_as_the_saved_one(
    capacity, k, num_envs, dtype, padding, adds, seed
):
    envs = StackedEnvs(num_envs, (3, 5), k, dtype, padding, repeat_prob=0.3, seed=seed)
    rng = np.random.default_rng(seed)
    saved, oracle = (
        buffer_for(envs, capacity),
        pydqn.PyReplayBuffer(capacity, envs.obs_shape, dtype, frame_stack=k, num_envs=num_envs),
    )
    fill([saved, oracle], envs, adds, rng)
    if len(saved):
        saved.sample(5)  # the generator's position is part of the state
    restored = buffer_for(envs, capacity, seed=None)  # the saved seed replaces its own
    restored.load_state_dict(through_file(saved.state_dict()))

    assert len(restored) == len(saved) == len(oracle)
    slots = torch.arange(len(saved))
    if len(saved):
        assert_same_batch(restored.get(slots), oracle.get(slots))
        for _ in range(3):
            assert_same_batch(restored.sample(16), saved.sample(16))
    # Env streams start new episodes after a restore; the ring continues where it stood.
    envs.stacks = [None] * num_envs
    for _ in range(capacity // num_envs + 2):
        ends = rng.choice(ENDS, num_envs)
        slots, oracle_slots = add_rows([restored, oracle], envs, list(range(num_envs)), ends, rng)
        assert torch.equal(slots, oracle_slots)
    slots = torch.arange(len(restored))
    assert_same_batch(restored.get(slots), oracle.get(slots))


def test_restored_frames_are_packed():
    envs = StackedEnvs(4, (84, 84), 4, torch.uint8, seed=3)
    rng = np.random.default_rng(3)
    saved = buffer_for(envs, capacity=2_000)
    fill([saved], envs, 3_000, rng)
    state = saved.state_dict()
    stored = saved.get(torch.arange(len(saved)))
    distinct = {
        frame.tobytes()
        for stacks in (stored.obs, stored.next_obs)
        for frame in stacks.numpy().reshape(-1, 84 * 84)
    }
    assert state["frames"].shape == (len(distinct), 84 * 84)  # every stored frame exactly once
    restored = buffer_for(envs, capacity=2_000)
    restored.load_state_dict(state)
    assert restored.nbytes <= saved.nbytes


def state_with(**changes):
    envs = StackedEnvs(2, (3, 5), 4, torch.uint8, seed=1)
    saved = buffer_for(envs, capacity=10)
    fill([saved], envs, 12, np.random.default_rng(1))
    return {**saved.state_dict(), **changes}, envs


@pytest.mark.parametrize(
    "changes,error,message",
    [
        (
            {"settings": {"capacity": 11}},
            ValueError,
            "saved from a buffer with capacity=11, this one has capacity=10",
        ),
        (
            {"frame_ids": torch.full((10, 5), 999, dtype=torch.int32)},
            ValueError,
            r"state\['frame_ids'\]: expected rows of state\['frames'\] in \[0, \d+\), got 999",
        ),
        (
            {"frame_ids": torch.zeros((10, 5), dtype=torch.int64)},
            TypeError,
            r"state\['frame_ids'\]: expected dtype Int, got Long",
        ),
        ({"reward": torch.full((10,), float("nan"))}, ValueError, r"state\['reward'\]: expected finite"),
        (
            {"action": torch.zeros(9, dtype=torch.int32)},
            ValueError,
            r"state\['action'\]: expected shape \[10\]",
        ),
        (
            {"added": -1},
            ValueError,
            r"state\['added'\]: expected an int in \[0, 1152921504606846976\], got -1",
        ),
    ],
)
def test_bad_states_are_rejected_and_change_nothing(changes, error, message):
    state, envs = state_with()
    if "settings" in changes:
        changes = {"settings": {**state["settings"], **changes["settings"]}}
    restored = buffer_for(envs, capacity=10)
    with pytest.raises(error, match=message):
        restored.load_state_dict({**state, **changes})
    assert len(restored) == 0
    restored.load_state_dict(state)  # still new, so the good state loads
    assert len(restored) == 10


def test_loading_into_a_used_buffer_or_a_foreign_object_fails_clearly():
    state, envs = state_with()
    used = buffer_for(envs, capacity=10)
    fill([used], envs, 1, np.random.default_rng(2))
    with pytest.raises(ValueError, match=r"expected a buffer nothing was added to, but it holds \d+"):
        used.load_state_dict(state)
    with pytest.raises(TypeError, match=r"expected a dict from ReplayBuffer\.state_dict"):
        used.load_state_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"missing \['frames'\]"):
        buffer_for(envs, capacity=10).load_state_dict({k: v for k, v in state.items() if k != "frames"})
