"""end_episodes() ends an episode without a final row, and continues() says which rows an add would
take as the next step of their episode: both buffers (host and kernel samplers, the oracle) agree
bit for bit, and the ended n-step windows are checked by hand."""

from functools import partial
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from states import assert_same_state
from streams import ENDS, PADDINGS, StackedEnvs, add_rows, assert_same_batch

import pydqn
from pydqn.replay.batch import Batch

# The host sampler, its kernel twin on the CPU, and the oracle.
BUFFERS = [
    pytest.param(pydqn.ReplayBuffer, id="host"),
    pytest.param(partial(pydqn.ReplayBuffer, sampler="kernel"), id="kernel-cpu"),
    pytest.param(pydqn.PyReplayBuffer, id="oracle"),
]
CPP_BUFFERS = BUFFERS[:2]
K, FRAME = 4, (2, 3)


def make(cls, envs: StackedEnvs, capacity: int = 32, **kwargs: Any):
    return cls(
        capacity,
        envs.obs_shape,
        envs.dtype,
        frame_stack=envs.k,
        num_envs=envs.num_envs,
        seed=kwargs.pop("seed", 0),
        **kwargs,
    )


def add_one(buf, envs: StackedEnvs, env: int, reward: float, end: str = "run"):
    """Steps `env` once and adds that row; returns (slot, next_obs)."""
    obs, next_obs = envs.step(env, episode_ends=end != "run")
    slot = buf.add(
        obs[None], [env], [reward], next_obs[None], [end == "terminated"], [end == "truncated"], env_ids=[env]
    )
    return int(slot[0]), next_obs


def readable_slots(buf) -> list[int]:
    """Slots whose windows are complete (get refuses the others)."""
    slots = []
    for slot in range(len(buf)):
        try:
            buf.get([slot])
        except ValueError as error:
            assert "window is not complete yet" in str(error)
            continue
        slots.append(slot)
    return slots


def assert_same_rows(actual: Batch, expected: Batch) -> None:
    """Bit for bit, weights aside (the oracle's get() has weights of 1)."""
    assert_same_batch(actual._replace(weights=expected.weights), expected)


def current_obs(envs: StackedEnvs) -> np.ndarray:
    return np.stack([envs.obs(e) for e in range(envs.num_envs)])


def leaves_of(buf) -> np.ndarray:
    """A prioritized C++ buffer's priority leaves (p^alpha), oldest stored transition first."""
    return buf.state_dict()["priorities"].numpy()


def oracle_leaves(oracle) -> np.ndarray:
    oldest = oracle.added - len(oracle)
    return np.array([oracle.sums[(oldest + i) % oracle.capacity] for i in range(len(oracle))])


# ---- the oracle -----------------------------------------------------------------------------------


@settings(max_examples=40)
@given(
    n_step=st.sampled_from([1, 3]),
    prioritized=st.booleans(),
    capacity=st.integers(1, 30),
    k=st.sampled_from([1, 4]),
    num_envs=st.integers(1, 3),
    padding=st.sampled_from(PADDINGS),
    seed=st.integers(0, 2**16),
    steps=st.integers(1, 60),
)
def test_every_slot_and_sample_matches_the_oracle_with_episodes_ended_by_call(
    n_step, prioritized, capacity, k, num_envs, padding, seed, steps
):
    capacity = max(capacity, 2 * num_envs * (n_step - 1) + 1)  # the kernel sampler's minimum
    envs = StackedEnvs(num_envs, (3, 5), k, torch.uint8, padding, repeat_prob=0.2, seed=seed)
    args: dict[str, Any] = dict(n_step=n_step, gamma=0.9, prioritized=prioritized, seed=seed)
    host = make(pydqn.ReplayBuffer, envs, capacity, **args)
    kernel = make(partial(pydqn.ReplayBuffer, sampler="kernel"), envs, capacity, **args)
    oracle = make(pydqn.PyReplayBuffer, envs, capacity, **args)
    beta = {"beta": 0.5} if prioritized else {}
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        env_ids = rng.choice(num_envs, rng.integers(1, num_envs + 1), replace=False)
        if rng.random() < 0.25:  # end some episodes without a final row
            ended = [b.end_episodes(None if len(env_ids) == num_envs else env_ids) for b in (host, kernel)]
            assert ended[0] == ended[1] == oracle.end_episodes(env_ids)
            for e in env_ids:
                if rng.random() < 0.5:
                    envs.stacks[e] = None  # a reset: the next episode starts elsewhere
        else:
            slots = add_rows([host, kernel, oracle], envs, env_ids, rng.choice(ENDS, len(env_ids)), rng)
            assert torch.equal(slots[0], slots[2]) and torch.equal(slots[1], slots[2])
        obs = current_obs(envs)
        expected = oracle.continues(obs)
        assert torch.equal(host.continues(obs), expected) and torch.equal(kernel.continues(obs), expected)
        readable = readable_slots(host)
        assert readable == readable_slots(oracle)
        if not readable:
            continue
        assert_same_rows(host.get(readable), oracle.get(readable))
        assert_same_batch(kernel.get(readable), host.get(readable))
        batch = host.sample(6, **beta)
        assert_same_batch(kernel.sample(6, **beta), batch)
        assert_same_rows(batch, oracle.get(batch.indices))
        if prioritized and rng.random() < 0.3:  # raise the maximum that completed windows get
            priorities = torch.from_numpy(rng.uniform(0.1, 5.0, len(batch.indices)))
            applied = [b.update_priorities(batch.transition_ids, priorities) for b in (host, kernel, oracle)]
            assert applied[0] == applied[1] == applied[2]
    if prioritized:
        np.testing.assert_allclose(leaves_of(host), oracle_leaves(oracle), rtol=1e-12)
        np.testing.assert_array_equal(leaves_of(kernel), leaves_of(host))


# ---- windows by hand ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", BUFFERS)
def test_an_ended_episode_cuts_its_windows_like_a_truncation_with_its_own_flags(cls):
    envs, truncated_envs = (StackedEnvs(1, FRAME, K, torch.uint8, seed=0) for _ in range(2))
    buf = make(cls, envs, n_step=3, gamma=0.5)
    truncated = make(cls, truncated_envs, n_step=3, gamma=0.5)  # the same episode, truncated
    next_obs = []
    for t, reward in enumerate([1.0, 2.0, 3.0, 4.0]):
        next_obs.append(add_one(buf, envs, 0, reward)[1])
        add_one(truncated, truncated_envs, 0, reward, "truncated" if t == 3 else "run")
    with pytest.raises(ValueError, match="slot 2 at position 0 holds a transition whose 3-step window"):
        buf.get([2])
    assert buf.end_episodes() == 1
    batch = buf.get([0, 1, 2, 3])
    # t0: 1 + .5*2 + .25*3; t1: 2 + .5*3 + .25*4; t2 and t3 are cut at t3: 3 + .5*4, and 4.
    assert batch.reward.tolist() == [2.75, 4.5, 5.0, 4.0]
    assert batch.discount.tolist() == [0.125, 0.125, 0.25, 0.5]
    for row, last in enumerate([2, 3, 3, 3]):
        assert np.array_equal(batch.next_obs[row].numpy(), next_obs[last])
    assert not batch.terminated.any() and not batch.truncated.any()
    # A truncated last row gives the same windows, its flag aside.
    cut = truncated.get([0, 1, 2, 3])
    assert cut.truncated.tolist() == [False, True, True, True]
    assert_same_batch(batch, cut._replace(truncated=batch.truncated))
    # The next episode's windows start afresh and leave the ended ones alone.
    for reward in [10.0, 20.0, 30.0]:
        add_one(buf, envs, 0, reward)
    assert_same_batch(buf.get([0, 1, 2, 3]), batch)
    assert buf.get([4]).reward.tolist() == [10.0 + 0.5 * 20.0 + 0.25 * 30.0]


@pytest.mark.parametrize("cls", BUFFERS)
def test_ended_windows_become_sampleable(cls):
    envs = StackedEnvs(1, FRAME, K, torch.uint8, seed=1)
    buf = make(cls, envs, n_step=3, gamma=0.9)
    for reward in [1.0, 2.0]:  # shorter than a window: nothing is complete
        add_one(buf, envs, 0, reward)
    assert readable_slots(buf) == []
    with pytest.raises(ValueError):  # the oracle's message is numpy's
        buf.sample(4)
    assert buf.end_episodes([0]) == 1
    assert set(buf.sample(64).indices.tolist()) == {0, 1}


@pytest.mark.parametrize("cls", BUFFERS)
def test_ended_windows_get_the_largest_priority_given_so_far(cls):
    envs = StackedEnvs(1, FRAME, K, torch.uint8, seed=2)
    buf = make(cls, envs, n_step=3, gamma=0.9, prioritized=True, alpha=1.0)
    for reward in range(5):
        add_one(buf, envs, 0, float(reward))
    assert buf.update_priorities([0, 1, 2, 3, 4], [2.0, 4.0, 1.0, 1.0, 1.0]) == 3  # 3 and 4 are open
    assert buf.end_episodes() == 1
    # Transitions 3 and 4 now complete with the maximum, 4: P(i) = p_i / (2 + 4 + 1 + 4 + 4).
    batch = buf.sample(15, beta=1.0)
    expected = np.array([2.0, 4.0, 1.0, 4.0, 4.0])[batch.transition_ids.numpy()] / 15
    np.testing.assert_allclose(batch.weights.numpy(), (expected * 5) ** -1.0 / (5 / 15) ** -1.0, rtol=1e-6)
    if isinstance(buf, pydqn.ReplayBuffer):
        np.testing.assert_array_equal(leaves_of(buf), [2.0, 4.0, 1.0, 4.0, 4.0])
    else:
        np.testing.assert_array_equal(oracle_leaves(buf), [2.0, 4.0, 1.0, 4.0, 4.0])


# ---- the next episode -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CPP_BUFFERS)
@pytest.mark.parametrize("n_step", [1, 3])
def test_after_end_episodes_the_next_add_may_start_anywhere_and_only_then(cls, n_step):
    envs = StackedEnvs(2, FRAME, K, torch.uint8, seed=3)
    buf = make(cls, envs, n_step=n_step)
    for _ in range(3):
        add_one(buf, envs, 0, 1.0)
        add_one(buf, envs, 1, 1.0)
    fresh = StackedEnvs(1, FRAME, K, torch.uint8, padding="distinct", seed=99)
    obs, next_obs = fresh.step(0, episode_ends=False)
    row = (obs[None], [5], [0.5], next_obs[None], [False], [False])
    state = buf.state_dict()
    with pytest.raises(ValueError, match="env 0, episode step 3: obs differs from the next_obs"):
        buf.add(*row, env_ids=[0])
    assert_same_state(buf.state_dict(), state)
    assert buf.end_episodes([0]) == 1
    slot = buf.add(*row, env_ids=[0])
    assert buf.end_episodes([0]) == 1  # its window (n > 1) completes with it alone
    stored = buf.get(slot)
    assert torch.equal(stored.obs[0], torch.from_numpy(obs))
    assert torch.equal(stored.next_obs[0], torch.from_numpy(next_obs))
    add_one(buf, envs, 1, 1.0)  # the other stream's episode goes on
    # A new episode may also begin with the obs the ended one would have continued with.
    assert buf.end_episodes([1]) == 1
    add_one(buf, envs, 1, 1.0)
    assert buf.continues(envs.obs(1)[None], env_ids=[1]).tolist() == [True]


@pytest.mark.parametrize("cls", BUFFERS)
def test_streams_without_an_open_episode_are_left_alone(cls):
    envs = StackedEnvs(3, FRAME, K, torch.uint8, seed=4)
    buf = make(cls, envs, n_step=3)
    assert buf.end_episodes() == 0  # nothing added yet
    add_one(buf, envs, 0, 1.0)
    add_one(buf, envs, 1, 1.0, "terminated")
    add_one(buf, envs, 2, 1.0, "truncated")
    readable = readable_slots(buf)
    before = buf.get(readable)
    assert buf.end_episodes([1, 2]) == 0
    assert readable_slots(buf) == readable
    assert_same_batch(buf.get(readable), before)
    assert buf.end_episodes() == 1  # env 0's
    assert buf.end_episodes() == 0  # and no more
    assert buf.end_episodes(torch.tensor([2, 0])) == 0


@pytest.mark.parametrize("cls", CPP_BUFFERS)
def test_a_call_that_ends_nothing_changes_nothing(cls):
    envs = StackedEnvs(2, FRAME, K, torch.uint8, seed=5)
    buf = make(cls, envs, n_step=3, prioritized=True)
    add_one(buf, envs, 0, 1.0)
    add_one(buf, envs, 1, 1.0, "terminated")
    state = buf.state_dict()
    assert buf.end_episodes([1]) == 0
    assert_same_state(buf.state_dict(), state)


# ---- bad arguments --------------------------------------------------------------------------------

NOT_1D = "env_ids: expected a non-empty 1-D sequence of env indices, got shape"
BAD_ENV_IDS = [
    ([0, 2], ValueError, "env_ids: expected values in [0, 2), got 2 at position 1"),
    ([-1], ValueError, "env_ids: expected values in [0, 2), got -1 at position 0"),
    ([1, 1], ValueError, "env_ids: each env may appear once per {call}, got 1 more than once"),
    (np.array([], np.int64), ValueError, NOT_1D + " (0,)"),
    ([[0, 1]], ValueError, NOT_1D + " (1, 2)"),
    ([0.0, 1.0], TypeError, "env_ids: expected integers, got torch.float"),
    ("one", TypeError, "env_ids: expected a numpy array or torch tensor of numbers, got str"),
]


def started(cls) -> tuple[StackedEnvs, Any]:
    """Two streams, each with an open 3-step window or two."""
    envs = StackedEnvs(2, FRAME, K, torch.uint8, seed=6)
    buf = make(cls, envs, n_step=3)
    for _ in range(2):
        add_one(buf, envs, 0, 1.0)
        add_one(buf, envs, 1, 1.0)
    return envs, buf


def assert_still_open(buf, envs: StackedEnvs) -> None:
    assert readable_slots(buf) == []  # no window was cut
    assert buf.continues(current_obs(envs)).tolist() == [True, True]
    add_one(buf, envs, 0, 1.0)  # and the episodes go on


@pytest.mark.parametrize("cls", CPP_BUFFERS)
@pytest.mark.parametrize("env_ids,error,message", BAD_ENV_IDS)
def test_bad_env_ids_are_refused_as_add_refuses_them_and_change_nothing(cls, env_ids, error, message):
    envs, buf = started(cls)
    state = buf.state_dict()
    with pytest.raises(error) as ended:
        buf.end_episodes(env_ids)
    assert message.format(call="end_episodes") in str(ended.value), str(ended.value)
    obs = np.zeros((2, *envs.obs_shape), np.uint8)  # env_ids are checked first
    with pytest.raises(error) as checked:
        buf.continues(obs, env_ids)
    assert message.format(call="continues") in str(checked.value), str(checked.value)
    with pytest.raises(error) as added:
        buf.add(obs, [0, 0], [0.0, 0.0], obs, [False, False], [False, False], env_ids=env_ids)
    assert message.format(call="add") in str(added.value), str(added.value)
    assert_same_state(buf.state_dict(), state)
    assert_still_open(buf, envs)


@pytest.mark.parametrize("cls", CPP_BUFFERS)
@pytest.mark.parametrize(
    "obs,env_ids",
    [
        (np.zeros((2, K, *FRAME), np.float32), None),  # dtype
        (np.zeros((1, K, *FRAME), np.uint8), None),  # rows
        (np.zeros((2, K, *FRAME), np.uint8), [0]),  # rows for env_ids
        (np.zeros((2, K + 1, *FRAME), np.uint8), None),  # obs_shape
        (np.zeros((K, *FRAME), np.uint8), None),  # no row axis
        ("frames", None),
    ],
)
def test_continues_checks_obs_as_add_does(cls, obs, env_ids):
    envs, buf = started(cls)
    with pytest.raises((ValueError, TypeError)) as added:
        rows = 2 if env_ids is None else len(env_ids)
        buf.add(obs, [0] * rows, [0.0] * rows, obs, [False] * rows, [False] * rows, env_ids=env_ids)
    with pytest.raises(type(added.value)) as checked:
        buf.continues(obs, env_ids)
    assert str(checked.value) == str(added.value)
    assert str(checked.value).startswith("obs: ")
    assert_still_open(buf, envs)


# ---- continues ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", BUFFERS)
@pytest.mark.parametrize("k", [1, 4])
def test_continues_is_true_exactly_for_the_last_next_obs_of_an_open_episode(cls, k):
    envs = StackedEnvs(3, FRAME, k, torch.float32, seed=7)
    buf = make(cls, envs)
    assert buf.continues(current_obs(envs)).tolist() == [False, False, False]  # nothing added
    _, next0 = add_one(buf, envs, 0, 1.0)
    _, next1 = add_one(buf, envs, 1, 1.0)
    obs = np.stack([next0, next1, envs.obs(2)])
    assert buf.continues(obs).tolist() == [True, True, False]
    assert buf.continues(obs[[1, 0]], env_ids=[1, 0]).tolist() == [True, True]
    assert buf.continues(obs[[0, 1]], env_ids=np.array([1, 0])).tolist() == [False, False]
    assert buf.continues(torch.from_numpy(obs[:1]), env_ids=torch.tensor([0])).tolist() == [True]
    other = obs.copy()
    other[0].reshape(-1)[0] += 1  # the oldest frame differs
    other[1].reshape(-1)[-1] += 1  # the newest
    assert buf.continues(other).tolist() == [False, False, False]
    add_one(buf, envs, 0, 1.0, "terminated")
    add_one(buf, envs, 1, 1.0, "truncated")
    assert buf.continues(obs).tolist() == [False, False, False]  # no open episode
    _, next2 = add_one(buf, envs, 2, 1.0)
    assert buf.continues(next2[None], env_ids=[2]).tolist() == [True]
    assert buf.end_episodes([2]) == 1
    assert buf.continues(next2[None], env_ids=[2]).tolist() == [False]
    result = buf.continues(current_obs(envs))
    assert result.dtype == torch.bool and result.shape == (3,)


@pytest.mark.parametrize("cls", BUFFERS)
def test_continues_compares_bits_not_values(cls):
    buf = cls(8, (3,), torch.float32, seed=0)
    nan = np.float32("nan")
    buf.add([[1.0, 1.0, 1.0]], [0], [0.0], np.array([[0.0, nan, 2.0]], np.float32), [False], [False])
    assert buf.continues(np.array([[0.0, nan, 2.0]], np.float32)).tolist() == [True]  # NaN != NaN
    assert buf.continues(np.array([[-0.0, nan, 2.0]], np.float32)).tolist() == [False]  # -0.0 == 0.0


@pytest.mark.parametrize("cls", CPP_BUFFERS)
def test_continues_changes_nothing(cls):
    envs, buf = started(cls)
    state = buf.state_dict()
    for _ in range(3):
        buf.continues(current_obs(envs))
        buf.continues(np.zeros((2, *envs.obs_shape), np.uint8))
    assert_same_state(buf.state_dict(), state)


# ---- state ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["host", "kernel"])
@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("prioritized", [False, True])
def test_state_after_end_episodes_loads_back_and_streams_start_afresh(sampler, n_step, prioritized):
    envs = StackedEnvs(2, FRAME, K, torch.uint8, "distinct", repeat_prob=0.2, seed=8)
    args: dict[str, Any] = dict(n_step=n_step, prioritized=prioritized, seed=8)
    buf = make(partial(pydqn.ReplayBuffer, sampler=sampler), envs, 24, **args)
    rng = np.random.default_rng(8)
    for step in range(20):
        add_rows([buf], envs, [0, 1], ["run", "terminated" if step % 9 == 8 else "run"], rng)
        if step % 7 == 6:
            assert buf.end_episodes([0]) == 1
    add_rows([buf], envs, [0, 1], ["run", "run"], rng)
    assert buf.continues(current_obs(envs)).tolist() == [True, True]
    assert buf.end_episodes([1]) == 1  # env 0's episode stays open in the saved buffer
    state = buf.state_dict()
    if n_step > 1:  # the windows end_episodes cut: complete, flags clear, shorter than n
        flags = state["window_terminated"] | state["window_truncated"]
        cut = state["complete"] & ~flags & (state["window_discount"] > np.float32(0.99) ** 3)
        assert int(cut.sum()) >= 3
    for restored_sampler in ("host", "kernel"):
        restored = make(partial(pydqn.ReplayBuffer, sampler=restored_sampler), envs, 24, **args)
        restored.load_state_dict(state)
        assert restored.continues(current_obs(envs)).tolist() == [False, False]
        assert restored.end_episodes() == 0
        slots = readable_slots(buf)
        assert readable_slots(restored) == slots
        assert_same_batch(restored.get(slots), buf.get(slots))
        assert_same_state(restored.state_dict(), state)
    beta = {"beta": 0.4} if prioritized else {}
    restored = make(pydqn.ReplayBuffer, envs, 24, **args)
    restored.load_state_dict(state)
    for _ in range(3):
        assert_same_batch(restored.sample(8, **beta), buf.sample(8, **beta))
    # After the load, the next add begins a new episode from any obs.
    fresh = StackedEnvs(1, FRAME, K, torch.uint8, "distinct", seed=9)
    obs, next_obs = fresh.step(0, episode_ends=False)
    restored.add(obs[None], [0], [0.0], next_obs[None], [False], [False], env_ids=[0])
