"""Experience chunks rebuild, bit for bit, the add() calls an actor made: across chunk and episode
boundaries, with env streams interleaved, at one frame per transition on the wire."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sb3_calls import CallStream

from pydqn import ReplayBuffer
from pydqn.distributed import ChunkReader, ChunkWriter


def calls_of(stream: CallStream, count: int) -> list[dict]:
    """add() keyword arguments for pydqn's buffer: the stream's rows, minus autoreset steps."""
    calls = []
    for call in stream.calls(count):
        calls.append(
            dict(obs=call.obs, action=call.action, reward=call.reward, next_obs=call.next_obs,
                 terminated=call.terminated, truncated=call.truncated, env_ids=None)
        )  # fmt: skip
    return calls


@pytest.mark.parametrize("frames", [4, 1])
@pytest.mark.parametrize("chunk_calls", [1, 7, 50])
def test_the_learner_rebuilds_every_row_the_actor_added(frames: int, chunk_calls: int) -> None:
    stream = CallStream(n_envs=3, frame_shape=(1, 8, 8) if frames > 1 else (8, 8), frames=frames, seed=frames)
    calls = calls_of(stream, 120)
    writer = ChunkWriter(3, stream.obs_shape, np.uint8, frame_stack=frames)
    reader = ChunkReader(frames)
    rebuilt: list[dict] = []
    for i, call in enumerate(calls):
        writer.add(**call)
        if (i + 1) % chunk_calls == 0 or i + 1 == len(calls):
            rebuilt.extend(reader.replay(writer.take(), env_offset=0))
    assert len(rebuilt) == len(calls)
    for sent, got in zip(calls, rebuilt, strict=True):
        for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
            np.testing.assert_array_equal(got[name], sent[name], err_msg=name)
        np.testing.assert_array_equal(got["env_ids"], np.arange(3))


def test_the_rebuilt_rows_fill_a_buffer_exactly_as_the_direct_ones_do() -> None:
    stream = CallStream(n_envs=2, frame_shape=(1, 8, 8), seed=3)
    calls = calls_of(stream, 80)
    direct = ReplayBuffer(1000, stream.obs_shape, frame_stack=4, num_envs=4, seed=0)
    wired = ReplayBuffer(1000, stream.obs_shape, frame_stack=4, num_envs=4, seed=0)
    writer, reader = ChunkWriter(2, stream.obs_shape, np.uint8, frame_stack=4), ChunkReader(4)
    for call in calls:
        direct.add(**{**call, "env_ids": np.array([2, 3])})
        writer.add(**call)
    for rows in reader.replay(writer.take(), env_offset=2):  # the actor's streams are 2 and 3
        wired.add(**rows)
    slots = torch.arange(len(direct))
    for a, b in zip(direct.get(slots), wired.get(slots), strict=True):
        assert torch.equal(a, b)


def test_a_chunk_costs_about_one_frame_per_transition() -> None:
    stream = CallStream(n_envs=2, frame_shape=(1, 84, 84), seed=1, end_probability=0.004)
    writer = ChunkWriter(2, stream.obs_shape, np.uint8, frame_stack=4)
    for call in calls_of(stream, 250):
        writer.add(**call)
    chunk = writer.take()
    per_transition = chunk.nbytes / chunk.rows
    assert 84 * 84 < per_transition < 1.05 * 84 * 84  # an (obs, next_obs) pair would be 8 frames


def test_rows_that_break_the_stack_are_refused_and_change_nothing() -> None:
    stream = CallStream(n_envs=1, frame_shape=(1, 8, 8), seed=2, end_probability=0.0)
    writer = ChunkWriter(1, stream.obs_shape, np.uint8, frame_stack=4)
    first, second = calls_of(stream, 2)
    writer.add(**first)
    broken = dict(second, next_obs=second["next_obs"].copy())
    broken["next_obs"][0, 0] += 1
    with pytest.raises(ValueError, match="env 0: next_obs is not obs moved on by one frame"):
        writer.add(**broken)
    with pytest.raises(ValueError, match="obs: expected uint8 rows of shape"):
        writer.add(**dict(second, obs=second["obs"].astype(np.float32)))
    writer.add(**second)
    assert writer.pending_rows == 2 and writer.take().starts.tolist() == [True, False]


def test_a_reader_refuses_an_episode_it_never_saw_start() -> None:
    stream = CallStream(n_envs=1, frame_shape=(1, 8, 8), seed=2, end_probability=0.0)
    writer = ChunkWriter(1, stream.obs_shape, np.uint8, frame_stack=4)
    first, second = calls_of(stream, 2)
    writer.add(**first)
    writer.take()  # lost
    writer.add(**second)
    with pytest.raises(
        ValueError, match="env 0: a row continues an episode whose start this reader never saw"
    ):
        list(ChunkReader(4).replay(writer.take()))


def test_after_end_episodes_the_next_row_ships_its_whole_obs() -> None:
    stream = CallStream(n_envs=1, frame_shape=(1, 8, 8), seed=2, end_probability=0.0)
    writer = ChunkWriter(1, stream.obs_shape, np.uint8, frame_stack=4)
    first, second = calls_of(stream, 2)
    writer.add(**first)
    writer.end_episodes()
    writer.add(**second)
    chunk = writer.take()
    assert chunk.starts.tolist() == [True, True] and len(chunk.frames) == 2 * (4 + 1)
    assert [r["obs"].tobytes() for r in chunk.replay()] == [first["obs"].tobytes(), second["obs"].tobytes()]
