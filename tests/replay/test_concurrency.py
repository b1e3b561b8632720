"""Threads hammer add and sample on a tiny ring; no sample may return a torn transition.

Every frame is stamped: its bytes are a pattern computed from (env, step), so a frame partly
overwritten by a later write, or frames and records of two different transitions mixed in one
sample, fail the check. Env e runs episodes of EPISODE_LENGTH[e] steps (length 1 included) whose
first stack repeats the first frame, so a transition's whole contents follow from (env, step),
which the sample carries in its action (env) and reward (step). Steps cycle with period PERIOD, a
multiple of every episode length, so all frames can be precomputed and the writers spend their
time inside add(), with the GIL released, where the races are.
"""

import os
import threading
import time
from typing import Any

import numpy as np
import pytest
import torch

import pydqn

K, SIDE, NUM_ENVS = 4, 84, 4
EPISODE_LENGTH = np.array([1, 3, 7, 50])
PERIOD = 1050  # lcm of the episode lengths
SECONDS = float(os.environ.get("PYDQN_STRESS_SECONDS", "3"))


def stamped_frames() -> np.ndarray:
    """(NUM_ENVS, PERIOD + 1, SIDE, SIDE) uint8: frame of env e at step s."""
    env = np.arange(NUM_ENVS)[:, None, None]
    step = np.arange(PERIOD + 1)[None, :, None]
    pattern = (np.arange(SIDE * SIDE) * (2 * step + 1) + env * 37 + step) % 251
    pattern[..., 0], pattern[..., 1], pattern[..., 2] = step[..., 0] % 256, step[..., 0] // 256, env[..., 0]
    return pattern.astype(np.uint8).reshape(NUM_ENVS, PERIOD + 1, SIDE, SIDE)


FRAMES = stamped_frames()


def expected(env: np.ndarray, step: np.ndarray):
    """obs, next_obs and terminated of the transitions of `env` at `step` (arrays of equal shape)."""
    start = step - step % EPISODE_LENGTH[env]
    obs_steps = np.maximum(step[:, None] + np.arange(-(K - 1), 1), start[:, None])
    next_steps = np.concatenate([obs_steps[:, 1:], step[:, None] + 1], axis=1)
    rows = env[:, None]
    return FRAMES[rows, obs_steps], FRAMES[rows, next_steps], (step + 1) % EPISODE_LENGTH[env] == 0


GAMMA = np.float32(0.9)


def check(batch, n_step: int = 1, ended_by_call: np.ndarray | None = None) -> None:
    """Each row is the n-step window of the transition its action names (env * PERIOD + step),
    whose reward is the step number: nothing in it came from another write. `ended_by_call`: per
    env, whether its episodes end by end_episodes() instead of a terminal row (so never
    terminated)."""
    env, step = np.divmod(batch.action.numpy(), PERIOD)
    assert np.all((env >= 0) & (env < NUM_ENVS)), env
    left = EPISODE_LENGTH[env] - step % EPISODE_LENGTH[env]  # transitions to the episode's end
    m = np.minimum(n_step, left)
    obs, _, _ = expected(env, step)
    _, next_obs, terminated = expected(env, step + m - 1)
    if ended_by_call is not None:
        terminated &= ~ended_by_call[env]
    reward = np.empty(len(step), np.float32)
    for row in range(len(step)):  # as the buffer sums: float32, by Horner's rule from the end
        total = np.float32(step[row] + m[row] - 1)
        for j in range(m[row] - 2, -1, -1):
            total = np.float32(step[row] + j) + GAMMA * total
        reward[row] = total
    assert np.array_equal(batch.obs.numpy(), obs), "torn obs"
    assert np.array_equal(batch.next_obs.numpy(), next_obs), "torn next_obs"
    assert np.array_equal(batch.terminated.numpy(), terminated), "terminated from another write"
    assert np.array_equal(batch.reward.numpy(), reward), "reward from another write"
    assert np.array_equal(batch.discount.numpy(), GAMMA ** m.astype(np.float32)), "discount"
    assert not batch.truncated.any()


def add_step(buf, env: int, step: int, terminal_rows: bool = True) -> bool:
    """Adds env's transition at `step`; returns whether it is its episode's last. Without
    `terminal_rows` that last row is not marked terminated (the caller ends the episode)."""
    step %= PERIOD
    obs, next_obs, terminated = expected(np.array([env]), np.array([step]))
    flag = terminated & terminal_rows
    buf.add(obs, [env * PERIOD + step], [float(step)], next_obs, flag, [False], env_ids=[env])
    return bool(terminated[0])


def hammer(workers, enough) -> None:
    """Runs each of ``workers`` in a loop on its own thread for at least SECONDS, until
    ``enough()`` (a shared, slow machine gets up to ten times longer), then re-raises the first
    exception any of them raised."""
    stop, errors = threading.Event(), []

    def loop(work):
        try:
            while not stop.is_set():
                work()
        except BaseException as error:  # re-raised in the main thread
            errors.append(error)
            stop.set()

    threads = [threading.Thread(target=loop, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    while not stop.is_set() and (time.monotonic() - started < SECONDS or not enough()):
        if time.monotonic() - started > 10 * SECONDS:
            break
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.mark.slow
@pytest.mark.parametrize("capacity,n_step", [(64, 1), (16, 1), (16, 3)])
def test_four_writers_two_samplers_on_a_tiny_ring_never_tear(capacity, n_step):
    buf = pydqn.ReplayBuffer(
        capacity, (K, SIDE, SIDE), frame_stack=K, num_envs=NUM_ENVS, seed=0, n_step=n_step, gamma=float(GAMMA)
    )
    for env in range(NUM_ENVS):  # the length-1 episode's window completes at once: samplers can start
        add_step(buf, env, 0)
    added, sampled = [1] * NUM_ENVS, [0, 0]

    def write(env):
        add_step(buf, env, added[env])
        added[env] += 1

    def sample(index):
        check(buf.sample(64), n_step)
        sampled[index] += 1

    enough = lambda: min(added) > 1000 and min(sampled) > 100
    hammer(
        [lambda e=e: write(e) for e in range(NUM_ENVS)] + [lambda i=i: sample(i) for i in range(2)], enough
    )
    assert enough(), (added, sampled)
    check(buf.sample(256), n_step)  # and what is left is intact


@pytest.mark.slow
def test_state_dict_while_writers_add_is_a_consistent_snapshot():
    args: dict[str, Any] = dict(frame_stack=K, num_envs=NUM_ENVS, n_step=3, gamma=float(GAMMA))
    buf = pydqn.ReplayBuffer(32, (K, SIDE, SIDE), seed=0, **args)
    for env in range(NUM_ENVS):
        add_step(buf, env, 0)
    added, snapshots = [1] * NUM_ENVS, [0]

    def write(env):
        add_step(buf, env, added[env])
        added[env] += 1

    def snapshot():
        restored = pydqn.ReplayBuffer(32, (K, SIDE, SIDE), **args)
        restored.load_state_dict(buf.state_dict())
        check(restored.sample(64), n_step=3)
        snapshots[0] += 1

    enough = lambda: min(added) > 100 and snapshots[0] > 10
    hammer([lambda e=e: write(e) for e in range(NUM_ENVS)] + [snapshot], enough)
    assert enough(), (added, snapshots)


@pytest.mark.slow
@pytest.mark.parametrize("n_step", [1, 3])
def test_priority_updates_racing_overwrites_never_reach_the_new_occupant(n_step):
    """A learner thread updates the priorities of batches it sampled a while ago, to a marker value,
    while four writers overwrite the tiny ring: every stored transition must end with the marker
    exactly when its own id was updated; new occupants keep the running maximum (1)."""
    buf = pydqn.ReplayBuffer(
        16,
        (K, SIDE, SIDE),
        frame_stack=K,
        num_envs=NUM_ENVS,
        seed=0,
        n_step=n_step,
        gamma=float(GAMMA),
        prioritized=True,
        alpha=0.5,
    )
    for env in range(NUM_ENVS):
        add_step(buf, env, 0)
    added, updated, pending, rounds = [1] * NUM_ENVS, set(), [], [0, 0]
    marker = 1e-4

    def write(env):
        add_step(buf, env, added[env])
        added[env] += 1

    def learn():
        batch = buf.sample(32, beta=0.5)
        check(batch, n_step)
        assert torch.equal(batch.indices, batch.transition_ids % 16)
        assert bool(((batch.weights > 0) & (batch.weights <= 1)).all()), batch.weights
        pending.append(batch.transition_ids)
        if len(pending) > 2:  # by now many of that batch's transitions have been overwritten
            ids = pending.pop(0)
            buf.update_priorities(ids, np.full(len(ids), marker))
            updated.update(ids.tolist())
        rounds[0] += 1

    def sample():
        check(buf.sample(64, beta=1.0), n_step)
        rounds[1] += 1

    enough = lambda: min(added) > 1000 and min(rounds) > 100
    hammer([lambda e=e: write(e) for e in range(NUM_ENVS)] + [learn, sample], enough)
    assert enough(), (added, rounds)
    state = buf.state_dict()
    first = state["added"] - len(state["priorities"])
    for row, leaf in enumerate(state["priorities"].tolist()):
        if first + row in updated:
            assert leaf == pytest.approx(marker**0.5), (first + row, leaf)
        else:  # untouched: the maximum from its add, or 0 while its window is open
            assert leaf == 1.0 or (n_step > 1 and leaf == 0.0), (first + row, leaf)


@pytest.mark.slow
def test_state_dict_while_priorities_update_loads_back():
    """Saving holds off adds but not priority updates: a transition held by an update is saved as
    the complete transition it is, so every state loads back and samples consistently."""
    args: dict[str, Any] = dict(
        frame_stack=K, num_envs=NUM_ENVS, n_step=3, gamma=float(GAMMA), prioritized=True
    )
    buf = pydqn.ReplayBuffer(32, (K, SIDE, SIDE), seed=0, **args)
    for env in range(NUM_ENVS):
        add_step(buf, env, 0)
    added, rounds = [1] * NUM_ENVS, [0, 0]

    def write(env):
        add_step(buf, env, added[env])
        added[env] += 1

    def learn():
        batch = buf.sample(32, beta=0.5)
        buf.update_priorities(batch.transition_ids, np.random.default_rng(rounds[0]).uniform(0.1, 5, 32))
        rounds[0] += 1

    def snapshot():
        state = buf.state_dict()
        assert state["max_priority"] ** 0.6 >= float(state["priorities"].max()) * (1 - 1e-12)
        restored = pydqn.ReplayBuffer(32, (K, SIDE, SIDE), **args)
        restored.load_state_dict(state)
        check(restored.sample(64, beta=0.5), n_step=3)
        rounds[1] += 1

    enough = lambda: min(added[:2]) > 100 and rounds[1] > 30 and rounds[0] > 100
    hammer([lambda e=e: write(e) for e in range(2)] + [learn, snapshot], enough)
    assert enough(), (added, rounds)


@pytest.mark.slow
@pytest.mark.parametrize("n_step", [1, 3])
def test_writers_that_end_episodes_by_call_beside_samplers_never_tear(n_step):
    """Envs 0 and 2 end each episode with end_episodes() after its last row instead of marking
    it terminated, envs 1 and 3 with terminal rows, and two threads sample: the windows that
    end_episodes cuts are those a terminal row cuts, with the flags clear."""
    buf = pydqn.ReplayBuffer(
        16, (K, SIDE, SIDE), frame_stack=K, num_envs=NUM_ENVS, seed=0, n_step=n_step, gamma=float(GAMMA)
    )
    by_call = np.array([True, False, True, False])
    added, sampled = [0] * NUM_ENVS, [0, 0]

    def write(env):
        if add_step(buf, env, added[env], terminal_rows=not by_call[env]) and by_call[env]:
            assert buf.end_episodes([env]) == 1
        added[env] += 1

    for env in range(NUM_ENVS):  # env 0's episodes are 1 long: samplers can start
        write(env)

    def sample(index):
        check(buf.sample(64), n_step, by_call)
        sampled[index] += 1

    enough = lambda: min(added) > 1000 and min(sampled) > 100
    hammer(
        [lambda e=e: write(e) for e in range(NUM_ENVS)] + [lambda i=i: sample(i) for i in range(2)], enough
    )
    assert enough(), (added, sampled)
    check(buf.sample(256), n_step, by_call)


@pytest.mark.slow
def test_end_episodes_and_continues_racing_an_add_to_its_stream_run_whole_or_are_refused():
    """A thread ends and queries the episodes of envs 0 and 1 while two writers add to them:
    each call either runs or is refused (ValueError, nothing changed, the writer retries), and
    the samplers never see a torn transition. n = 1, so a cut anywhere leaves every transition
    as check() expects it."""
    buf = pydqn.ReplayBuffer(
        16, (K, SIDE, SIDE), frame_stack=K, num_envs=NUM_ENVS, seed=0, gamma=float(GAMMA)
    )
    for env in range(NUM_ENVS):
        add_step(buf, env, 0)
    added, counts = [1] * NUM_ENVS, {"ended": 0, "refused": 0, "sampled": 0}
    held = "is being added to by another thread"

    def write(env):
        try:
            add_step(buf, env, added[env])
        except ValueError as error:
            assert held in str(error), error
            counts["refused"] += 1
            return
        added[env] += 1

    def end():
        obs, _, _ = expected(np.array([0, 1]), np.array([added[0], added[1]]) % PERIOD)
        try:
            assert buf.continues(obs, env_ids=[0, 1]).dtype == torch.bool
            counts["ended"] += buf.end_episodes([0, 1])
        except ValueError as error:
            assert held in str(error), error
            counts["refused"] += 1

    def sample():
        check(buf.sample(64))
        counts["sampled"] += 1

    enough = lambda: min(added[:2]) > 1000 and min(counts.values()) > 10
    hammer([lambda: write(0), lambda: write(1), end, sample], enough)
    assert enough(), (added, counts)
    check(buf.sample(256))
