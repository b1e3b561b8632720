"""pydqn's SB3 adapter against SB3's own ReplayBuffer fed the same calls: every row it stores and
samples is a row SB3 stored (bit for bit, same done and reward), and it stores every one of them,
except gymnasium NEXT_STEP autoreset rows, which are no transitions."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from sb3_calls import Call, CallStream, rows_of

pytest.importorskip("stable_baselines3")
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer

from pydqn.integrations.sb3 import ReplayBuffer


def spaces_of(stream: CallStream) -> tuple[spaces.Box, spaces.Discrete]:
    if np.issubdtype(stream.dtype, np.integer):
        box = spaces.Box(0, 255, stream.obs_shape, dtype=stream.dtype)
    else:
        box = spaces.Box(-np.inf, np.inf, stream.obs_shape, dtype=stream.dtype)
    return box, spaces.Discrete(stream.actions)


def feed(stream: CallStream, calls: list[Call], buffer_size: int, **kwargs) -> tuple[ReplayBuffer, Counter]:
    """Our buffer and SB3's (plain, timeouts handled) given the same calls; returns ours and the
    rows SB3 stored that are transitions."""
    obs_space, action_space = spaces_of(stream)
    ours = ReplayBuffer(buffer_size, obs_space, action_space, "cpu", stream.n_envs, **kwargs)
    oracle = SB3ReplayBuffer(
        buffer_size, obs_space, action_space, "cpu", stream.n_envs, handle_timeout_termination=True
    )
    autoreset = np.zeros((oracle.buffer_size, stream.n_envs), dtype=bool)
    for call in calls:
        autoreset[oracle.pos] = call.autoreset
        oracle.add(*call.sb3_args())
        ours.add(*call.args())
    stored = oracle.size()
    expected: Counter = Counter()
    for pos in range(stored):
        for env in np.flatnonzero(~autoreset[pos]):
            done = oracle.dones[pos, env] * (1 - oracle.timeouts[pos, env])
            expected += rows_of(
                oracle.observations[pos, env][None],
                oracle.actions[pos, env],
                oracle.next_observations[pos, env][None],
                np.array([done]),
                oracle.rewards[pos, env][None],
            )
    assert ours.size() == stored and ours.pos == oracle.pos and ours.full == oracle.full
    return ours, expected


def stored_rows(buffer: ReplayBuffer) -> Counter:
    """Every transition our buffer holds, read slot by slot, in SB3's shapes."""
    core, layout = buffer.pydqn_buffer, buffer.frame_layout
    assert layout is not None
    batch = core.get(torch.arange(len(core)))
    return rows_of(
        layout.from_buffer(batch.obs),
        batch.action,
        layout.from_buffer(batch.next_obs),
        batch.terminated.float(),
        batch.reward,
    )


def sampled_rows(buffer: ReplayBuffer, batch_size: int = 4096) -> set:
    """The distinct rows of a large batch (checking its SB3 shapes and dtypes)."""
    samples = buffer.sample(batch_size)
    assert samples.observations.dtype == torch.from_numpy(np.empty(0, buffer.observation_space.dtype)).dtype
    assert samples.actions.shape == (batch_size, 1) and samples.actions.dtype == torch.int64
    assert samples.rewards.shape == samples.dones.shape == (batch_size, 1)
    assert samples.rewards.dtype == samples.dones.dtype == torch.float32
    assert samples.discounts is None
    return set(
        rows_of(
            samples.observations, samples.actions, samples.next_observations, samples.dones, samples.rewards
        )
    )


# name: (CallStream's layout, the buffer's keywords, the frames it stores per observation)
LAYOUTS = {
    "atari-like (4, 6, 6)": (dict(frame_shape=(1, 6, 6), frames=4, axis=0), {}, 4),
    "channels-last (6, 6, 4)": (dict(frame_shape=(6, 6, 1), frames=4, axis=-1), {}, 4),
    "RGB frames (12, 6, 6)": (dict(frame_shape=(3, 6, 6), frames=4, axis=0), {}, 4),
    "declared vector (12,)": (dict(frame_shape=(3,), frames=4, dtype=np.float32), {"frame_stack": 4}, 4),
    "undeclared vector (12,)": (dict(frame_shape=(3,), frames=4, dtype=np.float32), {}, 1),
    "no stacking (3, 6, 6)": (dict(frame_shape=(3, 6, 6), frames=1), {}, 1),
}


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
@pytest.mark.parametrize("convention", ["sb3", "cleanrl", "next_step"])
def test_rows_are_sb3s_rows(layout: tuple, convention: str) -> None:
    stream_layout, kwargs, frames = layout
    stream = CallStream(n_envs=3, convention=convention, seed=len(convention), **stream_layout)
    calls = stream.calls(120)
    assert any(c.truncated.any() for c in calls) and any(c.terminated.any() for c in calls)
    ours, expected = feed(stream, calls, 3 * 200, **kwargs)
    assert stored_rows(ours) == expected
    assert sampled_rows(ours) <= set(expected)
    assert ours.frame_layout is not None and ours.frame_layout.frames == frames
    if convention == "next_step":
        assert sum(c.autoreset.sum() for c in calls) > 0


def test_optimize_memory_usage_is_accepted_with_timeouts_and_changes_nothing() -> None:
    stream = CallStream(n_envs=2, convention="sb3", seed=2)
    calls = stream.calls(80)
    plain, expected = feed(stream, calls, 400)
    compact, _ = feed(stream, calls, 400, optimize_memory_usage=True, handle_timeout_termination=True)
    assert stored_rows(compact) == stored_rows(plain) == expected


@pytest.mark.parametrize("frame_stack", [None, 4])
def test_a_full_buffer_keeps_the_rows_sb3_keeps(frame_stack: int | None) -> None:
    """Past capacity both drop the oldest add calls: the kept rows are the same."""
    stream = CallStream(n_envs=4, frame_shape=(1, 5, 5), convention="sb3", seed=3)
    calls = stream.calls(230)
    ours, expected = feed(stream, calls, 4 * 50, frame_stack=frame_stack)
    assert ours.full
    assert stored_rows(ours) == expected


def test_memory_is_one_frame_per_transition() -> None:
    stream = CallStream(n_envs=2, frame_shape=(1, 84, 84), convention="sb3", end_probability=0.002, seed=5)
    ours, _ = feed(stream, stream.calls(1000), 2 * 1000)
    frame = 84 * 84
    per_transition = ours.pydqn_buffer.nbytes / len(ours.pydqn_buffer)
    # SB3 keeps 2 stacks (8 frames) per transition, 4 with optimize_memory_usage.
    assert frame < per_transition < 1.1 * frame


def nstep_windows(calls: list[Call], n: int, gamma: float) -> set[tuple]:
    """Every complete n-step window of the calls' episodes, computed by hand in float32 as
    pydqn's Batch documents it: reward sum_j gamma^j r, next_obs and done of its last step,
    discount gamma^m."""
    gamma32 = np.float32(gamma)
    n_envs = len(calls[0].obs)
    windows: set[tuple] = set()
    for env in range(n_envs):
        episode: list[tuple] = []
        for call in calls:
            if call.autoreset[env]:
                continue
            episode.append((call.obs[env], call.action[env], call.reward[env], call.next_obs[env],
                            call.terminated[env], call.truncated[env]))  # fmt: skip
            ended = call.terminated[env] or call.truncated[env]
            closing = range(len(episode)) if ended else range(len(episode) - n, len(episode) - n + 1)
            for start in closing:
                if start < 0:
                    continue
                steps = episode[start : start + n]
                reward, discount = steps[-1][2], gamma32
                for step in reversed(steps[:-1]):
                    reward = np.float32(step[2] + gamma32 * reward)
                    discount = np.float32(discount * gamma32)
                windows.add((steps[0][0].tobytes(), int(steps[0][1]), steps[-1][3].tobytes(),
                             float(steps[-1][4]), float(reward), float(discount)))  # fmt: skip
            if ended:
                episode = []
    return windows


@pytest.mark.parametrize("convention", ["sb3", "next_step"])
def test_n_step_samples_are_the_hand_computed_windows(convention: str) -> None:
    stream = CallStream(n_envs=2, frame_shape=(1, 5, 5), convention=convention, end_probability=0.1, seed=8)
    calls = stream.calls(150)
    obs_space, action_space = spaces_of(stream)
    ours = ReplayBuffer(1000, obs_space, action_space, "cpu", 2, n_steps=3, gamma=0.9, seed=1)
    for call in calls:
        ours.add(*call.args())
    expected = nstep_windows(calls, 3, 0.9)
    samples = ours.sample(8192)
    assert samples.discounts is not None and samples.discounts.dtype == torch.float32
    drawn = {
        (o.numpy().tobytes(), int(a), n.numpy().tobytes(), float(d), float(r), float(g))
        for o, a, n, d, r, g in zip(
            samples.observations, samples.actions[:, 0], samples.next_observations,
            samples.dones[:, 0], samples.rewards[:, 0], samples.discounts[:, 0], strict=True,
        )
    }  # fmt: skip
    assert drawn == expected  # every drawn row is a window, and 8192 draws reach all of them


def test_timeouts_are_terminal_without_handle_timeout_termination() -> None:
    """SB3's meaning of handle_timeout_termination=False: done is sampled as it came."""
    stream = CallStream(n_envs=2, frame_shape=(1, 5, 5), convention="sb3", end_probability=0.2, seed=4)
    calls = stream.calls(60)
    obs_space, action_space = spaces_of(stream)
    ours = ReplayBuffer(400, obs_space, action_space, "cpu", 2, handle_timeout_termination=False)
    oracle = SB3ReplayBuffer(400, obs_space, action_space, "cpu", 2, handle_timeout_termination=False)
    for call in calls:
        ours.add(*call.sb3_args())
        oracle.add(*call.sb3_args())
    size = oracle.size()
    expected = rows_of(
        oracle.observations[:size].reshape(-1, *stream.obs_shape),
        oracle.actions[:size].reshape(-1),
        oracle.next_observations[:size].reshape(-1, *stream.obs_shape),
        oracle.dones[:size].reshape(-1),
        oracle.rewards[:size].reshape(-1),
    )
    assert any(c.truncated.any() for c in calls)
    assert stored_rows(ours) == expected
