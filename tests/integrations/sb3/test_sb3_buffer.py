"""The SB3 adapter's interface beyond exactness: saving and loading, SB3's bookkeeping, VecNormalize,
prioritized sampling, frame-stack detection, episodes cut by a reset, and refused input."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import torch
from sb3_calls import CallStream, rows_of

pytest.importorskip("stable_baselines3")
import gymnasium as gym
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from pydqn.integrations.sb3 import DQN, PrioritizedReplayBuffer, ReplayBuffer

ATARI = spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8)
ACTIONS = spaces.Discrete(6)


def atari_stream(n_envs: int = 2, seed: int = 0, **kwargs) -> CallStream:
    return CallStream(n_envs=n_envs, frame_shape=(1, 84, 84), seed=seed, **kwargs)


Buffer = TypeVar("Buffer", bound=ReplayBuffer)


def filled(buffer: Buffer, stream: CallStream, calls: int) -> Buffer:
    for call in stream.calls(calls):
        buffer.add(*call.args())
    return buffer


def same_samples(a: Any, b: Any, draws: int = 3) -> None:
    for _ in range(draws):
        for x, y in zip(a.sample(64), b.sample(64), strict=True):
            assert (x is None and y is None) or torch.equal(x, y)


# ---- saving ---------------------------------------------------------------------------------


def test_save_and_load_round_trip_contents_and_generator(tmp_path: Path) -> None:
    ours = filled(ReplayBuffer(2000, ATARI, ACTIONS, "cpu", 2, seed=4), atari_stream(), 300)
    path = tmp_path / "replay.pkl"
    save_to_pkl(path, ours)
    loaded = load_from_pkl(path)
    assert isinstance(loaded, SB3ReplayBuffer) and type(loaded) is ReplayBuffer
    assert (loaded.pos, loaded.full, loaded.size()) == (ours.pos, ours.full, ours.size())
    same_samples(ours, loaded)
    # The file holds each frame once: about nbytes, where SB3's optimized buffer would be 4 frames
    # per transition (its observations array alone).
    sb3_optimized = 2000 * ATARI.shape[0] * 84 * 84
    assert path.stat().st_size < 1.1 * ours.nbytes
    assert path.stat().st_size < sb3_optimized / 3.5


def test_models_save_and_load_the_buffer(tmp_path: Path) -> None:
    env = DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2)
    model = DQN("MlpPolicy", env, buffer_size=1000, learning_starts=100, seed=0, device="cpu")
    model.learn(300)
    model.save_replay_buffer(tmp_path / "buffer")
    other = DQN("MlpPolicy", env, buffer_size=1000, learning_starts=100, seed=1, device="cpu")
    other.load_replay_buffer(tmp_path / "buffer")
    assert other.replay_buffer is not model.replay_buffer
    same_samples(model.replay_buffer, other.replay_buffer)
    other.learn(200, reset_num_timesteps=False)  # goes on adding and training from the loaded rows
    assert other.replay_buffer is not None and model.replay_buffer is not None
    assert other.replay_buffer.size() > model.replay_buffer.size()


def test_an_empty_million_transition_buffer_pickles_small() -> None:
    empty = ReplayBuffer(1_000_000, ATARI, ACTIONS, "cpu", 8, frame_stack=4)
    data = pickle.dumps(empty)
    # The observation space (its low and high arrays) is most of it, as in SB3's own pickle.
    assert len(data) < len(pickle.dumps(ATARI)) + 16 * 1024
    restored = pickle.loads(data)
    assert restored.buffer_size == empty.buffer_size and restored.pydqn_buffer.capacity == 1_000_000


# ---- SB3's bookkeeping ----------------------------------------------------------------------


def test_size_pos_full_and_reset_follow_sb3() -> None:
    stream = atari_stream(n_envs=3)
    ours = ReplayBuffer(3 * 10, ATARI, ACTIONS, "cpu", 3)
    oracle = SB3ReplayBuffer(3 * 10, ATARI, ACTIONS, "cpu", 3)
    for call in stream.calls(25):
        ours.add(*call.args())
        oracle.add(*call.sb3_args())
        assert (ours.size(), ours.pos, ours.full) == (oracle.size(), oracle.pos, oracle.full)
    ours.reset()
    assert (ours.size(), ours.pos, ours.full, len(ours.pydqn_buffer)) == (0, 0, False, 0)
    filled(ours, atari_stream(n_envs=3, seed=9), 2)  # a fresh stream: the old episodes are gone
    assert len(ours.pydqn_buffer) == 6


# ---- VecNormalize -----------------------------------------------------------------------------


def test_vec_normalize_normalizes_samples_as_sb3_does() -> None:
    box = spaces.Box(-np.inf, np.inf, (12,), dtype=np.float32)
    stream = CallStream(n_envs=2, frame_shape=(3,), dtype=np.float32, seed=2)
    env = VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2), norm_obs=True, norm_reward=True)
    rms: Any = env.obs_rms
    rms.mean, rms.var = np.linspace(-1, 1, 12), np.linspace(0.5, 2, 12)
    env.observation_space = box
    env.ret_rms.var = np.array(4.0)
    a, b = (ReplayBuffer(500, box, spaces.Discrete(6), "cpu", 2, seed=3) for _ in range(2))
    for call in stream.calls(50):
        a.add(*call.args())
        b.add(*call.args())
    normalized, raw = a.sample(32, env=env), b.sample(32)
    expected_obs = env.normalize_obs(raw.observations.numpy())
    np.testing.assert_array_equal(normalized.observations.numpy(), expected_obs)
    np.testing.assert_array_equal(normalized.rewards.numpy(), env.normalize_reward(raw.rewards.numpy()))
    nstep = ReplayBuffer(500, box, spaces.Discrete(6), "cpu", 2, n_steps=3)
    filled(nstep, CallStream(n_envs=2, frame_shape=(3,), dtype=np.float32, seed=2), 20)
    with pytest.raises(ValueError, match="norm_reward"):
        nstep.sample(8, env=env)


# ---- prioritized ------------------------------------------------------------------------------


def test_prioritized_samples_follow_the_fed_back_priorities() -> None:
    buffer = filled(PrioritizedReplayBuffer(400, ATARI, ACTIONS, "cpu", 2, seed=1), atari_stream(), 100)
    first = buffer.sample(32)
    assert first.weights.shape == (32, 1) and first.weights.dtype == torch.float32
    assert torch.equal(first.weights, torch.ones(32, 1))  # every priority is the initial maximum
    ids = torch.arange(len(buffer.pydqn_buffer))
    favourite = int(ids[7])
    priorities = torch.full((len(ids),), 1e-3, dtype=torch.float64)
    priorities[7] = 1e3
    assert buffer.update_priorities(ids, priorities) == len(ids)
    drawn = buffer.sample(256, beta=1.0)
    share = (drawn.transition_ids == favourite).float().mean().item()
    expected = 1e3**0.6 / (1e3**0.6 + (len(ids) - 1) * 1e-3**0.6)
    assert abs(share - expected) < 0.1
    assert torch.all(drawn.weights[drawn.transition_ids == favourite] < 1e-3)


def test_prioritized_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="alpha"):
        PrioritizedReplayBuffer(100, ATARI, ACTIONS, alpha=1.5)
    with pytest.raises(ValueError, match="beta"):
        PrioritizedReplayBuffer(100, ATARI, ACTIONS, beta=-0.1)


# ---- frame stacking ---------------------------------------------------------------------------


def test_a_static_first_screen_waits_for_evidence_then_stores_exactly() -> None:
    """Frames all alike (a still screen) cannot tell a stack from equal channels: rows are held until
    one can, then stored as they came."""
    stream = atari_stream(n_envs=1, end_probability=0.0)
    calls = stream.calls(30)
    still = np.zeros_like(calls[0].obs)
    ours = ReplayBuffer(1000, ATARI, ACTIONS, "cpu", 1)
    oracle = SB3ReplayBuffer(1000, ATARI, ACTIONS, "cpu", 1)
    for _ in range(5):
        args: tuple[Any, ...] = (still, still, np.array([1]), np.array([0.0]), np.array([False]), [{}])
        ours.add(*args)
        oracle.add(*args)
        assert ours.frame_layout is None
    ours.end_episodes()  # (held too, until the layout is known)
    for call in calls:
        ours.add(*call.args())
        oracle.add(*call.sb3_args())
    assert ours.frame_layout is not None and ours.frame_layout.frames == 4
    size = oracle.size()
    expected = rows_of(
        oracle.observations[:size, 0], oracle.actions[:size, 0], oracle.next_observations[:size, 0],
        oracle.dones[:size, 0], oracle.rewards[:size, 0],
    )  # fmt: skip
    core = ours.pydqn_buffer
    got = core.get(torch.arange(len(core)))
    assert rows_of(got.obs, got.action, got.next_obs, got.terminated.float(), got.reward) == expected


def test_an_undecided_layout_is_stored_whole_when_a_batch_is_wanted() -> None:
    ours = ReplayBuffer(100, ATARI, ACTIONS, "cpu", 1)
    still = np.full((1, 4, 84, 84), 7, dtype=np.uint8)
    ours.add(still, still, np.array([2]), np.array([1.5]), np.array([False]), [{}])
    with pytest.warns(RuntimeWarning, match="frame_stack"):
        batch = ours.sample(4)
    assert ours.frame_layout is not None and ours.frame_layout.frames == 1
    assert torch.equal(batch.observations, torch.from_numpy(still).expand(4, -1, -1, -1))


def test_a_declared_stack_the_rows_contradict_is_refused_and_stores_nothing() -> None:
    unstacked = spaces.Box(0, 255, (4, 6, 6), dtype=np.uint8)
    rng = np.random.default_rng(0)
    obs, next_obs = rng.integers(0, 255, (2, 1, 4, 6, 6), dtype=np.uint8)
    ours = ReplayBuffer(100, unstacked, ACTIONS, "cpu", 1, frame_stack=4)
    with pytest.raises(ValueError, match="frame_stack"):
        ours.add(obs, next_obs, np.array([0]), np.array([0.0]), np.array([False]), [{}])
    assert (ours.size(), ours.pos, ours.frame_layout) == (0, 0, None)


def test_a_detected_stack_that_a_later_row_breaks_is_refused_naming_frame_stack() -> None:
    stream = atari_stream(n_envs=1, end_probability=0.0)
    ours = filled(ReplayBuffer(100, ATARI, ACTIONS, "cpu", 1), stream, 3)
    call = stream.step()
    broken = call.next_obs.copy()
    broken[0, 0] += 1  # no longer obs moved on by one frame
    stored = len(ours.pydqn_buffer)
    with pytest.raises(ValueError, match="frame_stack"):
        ours.add(call.obs, broken, call.action, call.reward, call.terminated, [{}])
    assert len(ours.pydqn_buffer) == stored and ours.pos == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(frame_stack=5), ValueError, "frame_stack: 5 frames cannot divide"),
        (dict(frame_stack=0), ValueError, "frame_stack: expected 1"),
        (dict(frame_stack=2.0), TypeError, "frame_stack: expected an int"),
        (dict(stack_axis="middle"), ValueError, "stack_axis"),
        (dict(n_steps=0), ValueError, "n_step"),
        (dict(gamma=1.5), ValueError, "gamma"),
    ],
)
def test_bad_settings_are_refused_at_construction(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ReplayBuffer(100, ATARI, ACTIONS, "cpu", 1, **kwargs)


def test_spaces_it_cannot_store_are_refused() -> None:
    with pytest.raises(TypeError, match="action_space: expected a Discrete"):
        ReplayBuffer(100, ATARI, spaces.Box(-1, 1, (2,)))
    with pytest.raises(TypeError, match="observation_space: expected a Box or Discrete"):
        ReplayBuffer(100, spaces.Dict({"a": ATARI}), ACTIONS)


def test_discrete_observations_are_stored_as_sb3_stores_them() -> None:
    ours = ReplayBuffer(50, spaces.Discrete(16), spaces.Discrete(4), "cpu", 2)
    oracle = SB3ReplayBuffer(50, spaces.Discrete(16), spaces.Discrete(4), "cpu", 2)
    rng = np.random.default_rng(1)
    obs = rng.integers(0, 16, 2)
    for _ in range(20):
        next_obs = rng.integers(0, 16, 2)
        done = rng.random(2) < 0.2
        args: tuple[Any, ...] = (obs, next_obs, rng.integers(0, 4, 2), rng.normal(size=2), done, [{}, {}])
        ours.add(*args)
        oracle.add(*args)
        obs = np.where(done, rng.integers(0, 16, 2), next_obs)
    core = ours.pydqn_buffer
    got = core.get(torch.arange(len(core)))
    size = oracle.size()
    expected = rows_of(
        oracle.observations[:size].reshape(-1, 1), oracle.actions[:size].reshape(-1),
        oracle.next_observations[:size].reshape(-1, 1), oracle.dones[:size].reshape(-1),
        oracle.rewards[:size].reshape(-1),
    )  # fmt: skip
    assert rows_of(got.obs, got.action, got.next_obs, got.terminated.float(), got.reward) == expected


# ---- refused calls ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "value", "error", "match"),
    [
        (0, np.zeros((2, 4, 84, 83), np.uint8), ValueError, r"obs: expected shape \(2, 4, 84, 84\)"),
        (1, np.zeros((2, 4, 84, 84), np.float32), TypeError, "next_obs: expected dtype uint8"),
        (2, np.array([0, 6]), ValueError, r"action: expected actions in \[0, 6\)"),
        (2, np.array([0.5, 1.0]), TypeError, "action: expected integer actions"),
        (3, np.array([np.nan, 1.0]), ValueError, "reward: expected finite"),
        (3, np.array([1.0]), ValueError, "reward: expected 2 values"),
        (4, np.array([0.0, 2.0]), ValueError, r"done: expected bools \(or 0/1\)"),
        (5, [{}], ValueError, "infos: expected a list of 2 dicts"),
        (5, {"_final_obs": np.array([True])}, ValueError, r"infos\['_final_obs'\]: expected 2 flags"),
    ],
)
@pytest.mark.parametrize("frame_stack", [4, None], ids=["declared", "to be found"])
def test_bad_add_arguments_are_refused_and_change_nothing(
    position: int, value, error: type, match: str, frame_stack: int | None
) -> None:
    ours = ReplayBuffer(100, ATARI, ACTIONS, "cpu", 2, frame_stack=frame_stack)
    stream = atari_stream(n_envs=2)
    first = stream.step().sb3_args()
    ours.add(*first)
    args = list(stream.step().sb3_args())
    good = list(args)
    args[position] = value
    before = (ours.size(), ours.pos, ours.nbytes)
    with pytest.raises(error, match=match):
        ours.add(*args)
    assert (ours.size(), ours.pos, ours.nbytes) == before
    ours.add(*good)  # the call it refused was the next one: the episode goes on from there
    assert len(ours.pydqn_buffer) == 4 and ours.frame_layout is not None and ours.frame_layout.frames == 4


def test_without_stable_baselines3_the_import_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['stable_baselines3'] = None\n"
        "try:\n    import pydqn.integrations.sb3\n"
        "except ImportError as error:\n    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert 'pip install "pydqn[sb3]"' in out.stdout


@pytest.mark.cuda
def test_samples_come_on_the_cuda_device(cuda_device: torch.device) -> None:
    ours = filled(ReplayBuffer(400, ATARI, ACTIONS, cuda_device, 2, seed=1), atari_stream(), 40)
    host = filled(ReplayBuffer(400, ATARI, ACTIONS, "cpu", 2, seed=1), atari_stream(), 40)
    on_device, on_host = ours.sample(32), host.sample(32)
    assert on_device.observations.device == cuda_device
    assert rows_of(*on_device[:5]) == rows_of(*on_host[:5])


# ---- episodes cut without a final row -----------------------------------------------------------


def test_an_env_reset_mid_episode_starts_a_new_episode_and_stores_exactly() -> None:
    """SB3 resets the env on a second learn(): that env's next obs continues nothing."""
    stream = atari_stream(n_envs=2, end_probability=0.0)
    calls = stream.calls(10)
    fresh = atari_stream(n_envs=2, seed=7, end_probability=0.0).calls(10)
    ours = ReplayBuffer(400, ATARI, ACTIONS, "cpu", 2, n_steps=3, gamma=0.5)
    oracle = SB3ReplayBuffer(400, ATARI, ACTIONS, "cpu", 2)
    for call in calls + fresh:
        ours.add(*call.args())
        oracle.add(*call.sb3_args())
    core = ours.pydqn_buffer
    assert len(core) == 40
    # The windows the reset cut are complete, bootstrapping from the last next_obs before it (the
    # last two calls' windows of the fresh episodes are still open).
    batch = core.get(torch.arange(36))
    cut = [16, 17, 18, 19]  # the last two steps of each env before the reset (slots are env-interleaved)
    assert torch.equal(batch.discount[cut], torch.tensor([0.25, 0.25, 0.5, 0.5]))
    assert torch.equal(batch.discount[:16], torch.full((16,), 0.125))
    assert not batch.terminated.any() and not batch.truncated.any()
    assert torch.equal(batch.next_obs[18], torch.from_numpy(calls[9].next_obs[0]))


def test_sb3s_cut_of_the_last_trajectory_ends_every_episode() -> None:
    """learn() with optimize_memory_usage writes buffer.dones[pos] = True to cut the trajectory."""
    stream = atari_stream(n_envs=2, end_probability=0.0)
    ours = filled(ReplayBuffer(400, ATARI, ACTIONS, "cpu", 2, n_steps=3), stream, 5)
    ours.dones[(ours.pos - 1) % ours.buffer_size] = True
    windows = ours.pydqn_buffer.get(torch.arange(10))
    assert torch.equal(windows.discount[-2:], torch.full((2,), 0.99, dtype=torch.float32))
    filled(ours, atari_stream(n_envs=2, seed=3, end_probability=0.0), 2)  # new episodes, accepted


def test_sb3_learns_twice_with_a_fresh_env_reset_between(tmp_path: Path) -> None:
    env = DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2)
    for optimize in (False, True):
        model = DQN(
            "MlpPolicy",
            env,
            buffer_size=2000,
            learning_starts=100,
            optimize_memory_usage=optimize,
            device="cpu",
        )
        model.learn(300)
        with warnings.catch_warnings():
            # SB3 warns that, with optimize_memory_usage, it cuts the last trajectory (buffer.dones)
            warnings.filterwarnings("ignore", "The last trajectory in the replay buffer will be truncated")
            model.learn(300)  # reset_num_timesteps=True: SB3 resets the env mid-episode
        buffer = model.replay_buffer
        assert isinstance(buffer, ReplayBuffer) and buffer.size() >= 600 // 2
        assert len(buffer.pydqn_buffer) == 2 * buffer.size()  # every row of both runs is stored


# ---- autoreset rows ---------------------------------------------------------------------------


def test_next_step_autoreset_rows_of_discrete_observations_are_dropped() -> None:
    """gymnasium NEXT_STEP, 2 envs, Discrete observations: env 0 ends at t, env 1 at t+1."""
    ours = ReplayBuffer(50, spaces.Discrete(16), spaces.Discrete(2), "cpu", 2)
    calls = [  # obs, next_obs, terminated, ended (RecordEpisodeStatistics' _episode)
        ([3, 7], [5, 8], [True, False], [True, False]),
        ([5, 8], [0, 9], [False, True], [False, True]),  # env 0: its autoreset row (5 -> 0)
        ([0, 9], [1, 0], [False, False], [False, False]),  # env 1: its autoreset row (9 -> 0)
        ([1, 0], [2, 1], [False, False], [False, False]),
    ]
    for obs, next_obs, terminated, ended in calls:
        infos = {"episode": {}, "_episode": np.array(ended)}
        reward = np.where(np.array(obs) == np.array([5, 9]), 0.0, 1.0)  # the autoreset rows pay 0
        ours.add(np.array(obs), np.array(next_obs), np.array([0, 1]), reward, np.array(terminated), infos)
    got = ours.pydqn_buffer.get(torch.arange(len(ours.pydqn_buffer)))
    stored = sorted(zip(got.obs[:, 0].tolist(), got.next_obs[:, 0].tolist(), strict=True))
    assert stored == sorted([(3, 5), (7, 8), (8, 9), (0, 1), (0, 1), (1, 2)])  # no (5, 0), no (9, 0)


def test_sb3s_rows_are_never_taken_for_autoreset_rows() -> None:
    """SB3's vector envs reset in the same step: a first step from a reset state equal to the final
    one, paying 0, is a real transition (FrozenLake truncated at its start)."""
    ours = ReplayBuffer(50, spaces.Discrete(16), spaces.Discrete(2), "cpu", 1)
    truncated = [{"TimeLimit.truncated": True}]
    ours.add(np.array([1]), np.array([0]), np.array([0]), np.array([0.0]), np.array([True]), truncated)
    ours.add(np.array([0]), np.array([4]), np.array([1]), np.array([0.0]), np.array([False]), [{}])
    assert len(ours.pydqn_buffer) == 2


def test_callers_infos_are_left_as_they_came() -> None:
    ours = ReplayBuffer(50, spaces.Discrete(16), spaces.Discrete(2), "cpu", 2)
    mask, limit = np.array([True, False]), np.array([False, False])
    infos = {"_TimeLimit.truncated": mask, "TimeLimit.truncated": limit}
    ours.add(
        np.array([1, 2]), np.array([3, 4]), np.array([0, 1]), np.zeros(2), np.array([False, False]), infos
    )
    assert mask.tolist() == [True, False] and limit.tolist() == [False, False]


@pytest.mark.parametrize(
    ("infos", "truncated"),
    [
        (
            {"final_observation": np.array([None, None]), "_final_observation": np.array([False, True])},
            [0, 1],
        ),
        (
            {"TimeLimit.truncated": np.array([True, True]), "_TimeLimit.truncated": np.array([True, False])},
            [1, 0],
        ),
        ({"episode": {}, "_episode": np.array([True, True])}, [0, 1]),
        ({}, [0, 0]),
    ],
    ids=["gymnasium 0.29 final_observation", "TimeLimit.truncated mask", "RecordEpisodeStatistics", "none"],
)
def test_cleanrl_episode_ends_are_read_from_each_kind_of_mask(infos: dict, truncated: list) -> None:
    from pydqn.integrations.sb3.episodes import episode_ends

    done = np.array([True, False])  # env 0 terminated: CleanRL's done
    terminated, got, _ = episode_ends(done, infos, 2, handle_timeout_termination=False)
    assert terminated.tolist() == [True, False]
    assert got.tolist() == [bool(t) and not d for t, d in zip(truncated, done, strict=True)]


def test_a_real_gymnasium_next_step_vector_env_stores_its_transitions_only() -> None:
    """CleanRL's loop over gymnasium 1.x's default (NEXT_STEP) autoreset, 4-frame stacks, episodes
    truncated at 20 steps: stored are the steps taken, never the autoreset steps."""

    def make() -> gym.Env:
        env = gym.make("CartPole-v1", max_episode_steps=20)
        return gym.wrappers.FrameStackObservation(gym.wrappers.RecordEpisodeStatistics(env), 4)

    envs = gym.vector.SyncVectorEnv([make, make])
    ours = ReplayBuffer(
        2000, envs.single_observation_space, envs.single_action_space, "cpu", 2, frame_stack=4
    )
    expected: Counter = Counter()
    obs, _ = envs.reset(seed=0)
    ended_before = np.zeros(2, dtype=bool)
    for step in range(200):
        actions = np.array([step % 2, (step // 3) % 2])
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        ours.add(obs, next_obs, actions, rewards, terminations, infos)
        for env in np.flatnonzero(~ended_before):
            expected += rows_of(
                obs[env][None], actions[env], next_obs[env][None], [terminations[env]], [rewards[env]]
            )
        ended_before = terminations | truncations
        obs = next_obs
    envs.close()
    core, layout = ours.pydqn_buffer, ours.frame_layout
    assert layout is not None
    got = core.get(torch.arange(len(core)))
    stored = rows_of(layout.from_buffer(got.obs), got.action, layout.from_buffer(got.next_obs),
                     got.terminated.float(), got.reward)  # fmt: skip
    assert stored == expected and sum(expected.values()) < 400  # the autoreset steps were left out


# ---- an undecided layout ----------------------------------------------------------------------


def test_pickling_and_reset_while_the_layout_is_undecided() -> None:
    still = np.zeros((1, 4, 84, 84), dtype=np.uint8)
    ours = ReplayBuffer(1000, ATARI, ACTIONS, "cpu", 1)
    ours.add(still, still, np.array([1]), np.array([0.5]), np.array([False]), [{}])
    restored = pickle.loads(pickle.dumps(ours))
    assert restored.frame_layout is None and restored.nbytes == ours.nbytes
    calls = atari_stream(n_envs=1, end_probability=0.0).calls(4)
    for call in calls:
        restored.add(*call.args())
    assert restored.frame_layout is not None and restored.frame_layout.frames == 4
    assert len(restored.pydqn_buffer) == 5
    ours.reset()
    assert (ours.size(), ours.nbytes, ours.frame_layout) == (0, 0, None)
