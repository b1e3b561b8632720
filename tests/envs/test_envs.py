"""Tests for pydqn.envs: spaces and dtypes, Atari backend equivalence, frame stacking, reward clipping,
episodic life, the frame cap, NEXT_STEP autoreset filtering, seeding, and argument errors."""

from __future__ import annotations

from contextlib import closing
from typing import Any, NamedTuple

import numpy as np
import pytest
from gymnasium.spaces import Box, Discrete
from gymnasium.vector import AutoresetMode, VectorEnv

from pydqn.envs import BACKENDS, INFO_KEYS, TransitionFilter, make_env, num_actions

INFO_DTYPES = {
    "raw_reward": np.float64,
    "episode_done": np.bool_,
    "episode_return": np.float64,
    "episode_length": np.int64,
}


class Step(NamedTuple):
    action: np.ndarray
    obs: np.ndarray  # the observation the action was taken on
    next_obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: dict[str, Any]


def rollout(
    env: VectorEnv, steps: int, *, action_seed: int = 0, reset_seed: int | None = None
) -> tuple[dict[str, Any], list[Step]]:
    """Reset, then take ``steps`` uniformly random actions; return the reset infos and every step."""
    obs, infos = env.reset(seed=reset_seed)
    rng = np.random.default_rng(action_seed)
    out = []
    for _ in range(steps):
        action = rng.integers(0, num_actions(env), env.num_envs)
        next_obs, reward, terminated, truncated, step_infos = env.step(action)
        out.append(Step(action, obs, next_obs, reward, terminated, truncated, step_infos))
        obs = next_obs
    return infos, out


def check_infos(infos: dict[str, Any], num_envs: int, atari: bool) -> None:
    for key in INFO_KEYS:
        assert infos[key].shape == (num_envs,), key
        assert infos[key].dtype == INFO_DTYPES[key], key
    if atari:
        assert infos["lives"].shape == (num_envs,) and infos["lives"].dtype == np.int64


def check_step_dtypes(step: Step, num_envs: int) -> None:
    assert step.reward.shape == step.terminated.shape == step.truncated.shape == (num_envs,)
    assert step.reward.dtype == np.float32
    assert step.terminated.dtype == step.truncated.dtype == np.bool_


# ---------------------------------------------------------------------------------------- spaces


@pytest.mark.parametrize("backend", BACKENDS)
def test_atari_spaces_and_dtypes(backend: str) -> None:
    with closing(make_env("ALE/Pong-v5", 2, seed=0, backend=backend)) as env:
        assert env.num_envs == 2
        assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        assert env.single_observation_space == Box(0, 255, (4, 84, 84), np.uint8)
        assert env.observation_space.shape == (2, 4, 84, 84)
        assert env.single_action_space == Discrete(6)
        assert env.action_space.shape == (2,)
        obs, infos = env.reset()
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        check_infos(infos, 2, atari=True)
        # The first observation of a game is zero-padded: only the newest (last) frame is a screen.
        assert not obs[:, :3].any() and obs[:, 3].reshape(2, -1).any(axis=1).all()
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, step_infos = env.step(action)
        assert next_obs.shape == (2, 4, 84, 84) and next_obs.dtype == np.uint8
        check_step_dtypes(Step(action, obs, next_obs, reward, terminated, truncated, step_infos), 2)
        check_infos(step_infos, 2, atari=True)


@pytest.mark.parametrize(
    "env_id, obs_dim, num_actions",
    [("CartPole-v1", 4, 2), ("Acrobot-v1", 6, 3), ("MountainCar-v0", 2, 3), ("FrozenLake-v1", 16, 4)],
)
def test_classic_spaces_and_dtypes(env_id: str, obs_dim: int, num_actions: int) -> None:
    with closing(make_env(env_id, 3, seed=0)) as env:
        assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        space = env.single_observation_space
        assert isinstance(space, Box) and space.shape == (obs_dim,) and space.dtype == np.float32
        assert env.observation_space.shape == (3, obs_dim)
        assert env.single_action_space == Discrete(num_actions)
        infos, steps = rollout(env, 20)
        check_infos(infos, 3, atari=False)
        for step in steps:
            assert step.next_obs.shape == (3, obs_dim) and step.next_obs.dtype == np.float32
            assert all(space.contains(row) for row in step.next_obs)
            check_step_dtypes(step, 3)
            check_infos(step.infos, 3, atari=False)
        if env_id == "FrozenLake-v1":  # one-hot: one 1 per row, the start state is 0
            all_obs = np.stack([steps[0].obs] + [s.next_obs for s in steps])
            assert set(np.unique(all_obs)) <= {0.0, 1.0}
            assert (all_obs.sum(axis=-1) == 1).all()
            assert (steps[0].obs.argmax(axis=1) == 0).all()


# ------------------------------------------------------------------------------- Atari semantics


def test_atari_backends_agree_bit_exactly() -> None:
    """With deterministic resets (noop_max=1) the two backends give identical outputs, step for step,
    through life losses, game overs and frame-cap truncations."""
    options = dict(noop_max=1, max_episode_frames=600, repeat_action_probability=0.0)
    runs = {}
    for backend in BACKENDS:
        with closing(make_env("ALE/Breakout-v5", 3, seed=5, backend=backend, **options)) as env:
            runs[backend] = rollout(env, 350, action_seed=1)
    (infos_a, steps_a), (infos_b, steps_b) = runs["ale_vector"], runs["gymnasium"]
    for key in infos_a:
        np.testing.assert_array_equal(infos_a[key], infos_b[key])
    for t, (a, b) in enumerate(zip(steps_a, steps_b, strict=True)):
        for field in ("obs", "next_obs", "reward", "terminated", "truncated"):
            np.testing.assert_array_equal(
                getattr(a, field), getattr(b, field), err_msg=f"{field} at step {t}"
            )
        assert a.reward.dtype == b.reward.dtype and a.next_obs.dtype == b.next_obs.dtype
        assert a.infos.keys() == b.infos.keys()
        for key in a.infos:
            np.testing.assert_array_equal(a.infos[key], b.infos[key], err_msg=f"{key} at step {t}")
    # The comparison covered every kind of boundary.
    terminated = np.stack([s.terminated for s in steps_a])
    truncated = np.stack([s.truncated for s in steps_a])
    done = np.stack([s.infos["episode_done"] for s in steps_a])
    assert (terminated & ~done).any(), "no life loss"
    assert (terminated & done).any(), "no game over"
    assert truncated.any(), "no truncation"


@pytest.mark.parametrize("backend", BACKENDS)
def test_atari_reset_is_fire_then_noops(backend: str) -> None:
    """Both backends reset with FIRE, then the random no-ops (the case noop_max=1 cannot show)."""
    import cv2
    import gymnasium as gym

    for seed in (1, 4):
        with closing(make_env("ALE/Breakout-v5", 1, seed=seed, backend=backend)) as env:
            if backend == "ale_vector":
                obs, inner_infos = env.unwrapped.reset(seed=seed)
                reset_frames = int(inner_infos["episode_frame_number"][0])
            else:
                obs, _ = env.reset()
                vector: Any = env.unwrapped  # gymnasium's SyncVectorEnv of ALE envs
                reset_frames = vector.envs[0].unwrapped.ale.getEpisodeFrameNumber()
        assert 1 <= reset_frames <= 30
        with closing(
            gym.make(
                "ALE/Breakout-v5",
                frameskip=1,
                repeat_action_probability=0.0,
                obs_type="grayscale",
                disable_env_checker=True,
            )
        ) as raw:
            raw.reset(seed=0)
            for action in [1] + [0] * (reset_frames - 1):  # FIRE, then NOOPs
                screen, *_ = raw.step(action)
        expected = cv2.resize(screen, (84, 84), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(obs[0, -1], expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_atari_frame_stacking_oldest_first(backend: str) -> None:
    with closing(make_env("ALE/Breakout-v5", 2, seed=1, backend=backend)) as env:
        _, steps = rollout(env, 250)
    rows = TransitionFilter(2)
    rows.reset(steps[0].obs)
    checked = {"transition": 0, "new_game": 0, "new_life": 0}
    prev_infos: dict[str, Any] | None = None
    for step in steps:
        t = rows.step(step.action, step.reward, step.next_obs, step.terminated, step.truncated)
        # Within an episode, frame i+1 of obs_t is frame i of obs_{t+1}: the newest frame is last.
        np.testing.assert_array_equal(t.next_obs[:, :-1], t.obs[:, 1:])
        checked["transition"] += len(t.env_ids)
        for i in np.flatnonzero(~t.valid):
            assert prev_infos is not None
            if prev_infos["episode_done"][i]:  # a new game: zero-padded stack
                assert not step.next_obs[i, :-1].any() and step.next_obs[i, -1].any()
                checked["new_game"] += 1
            else:  # life lost, game goes on: the stack continues
                np.testing.assert_array_equal(step.next_obs[i, :-1], step.obs[i, 1:])
                checked["new_life"] += 1
        prev_infos = step.infos
    assert checked["transition"] > 400 and checked["new_game"] >= 1 and checked["new_life"] >= 3, checked


@pytest.mark.parametrize("backend", BACKENDS)
def test_atari_reward_clipping_keeps_raw_score(backend: str) -> None:
    """SpaceInvaders scores 5..30 per step: the agent's reward is sign(raw), the infos keep the score."""
    with closing(make_env("ALE/SpaceInvaders-v5", 2, seed=0, backend=backend)) as env:
        _, steps = rollout(env, 200)
    reward = np.stack([s.reward for s in steps])
    raw = np.stack([s.infos["raw_reward"] for s in steps])
    assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
    assert raw.max() > 1, "no raw reward above 1: the test shows nothing"
    np.testing.assert_array_equal(reward, np.sign(raw).astype(np.float32))
    if backend == "ale_vector":  # unclipped: same seed and actions give the raw score as reward
        with closing(make_env("ALE/SpaceInvaders-v5", 2, seed=0, backend=backend, clip_rewards=False)) as env:
            _, unclipped = rollout(env, 200)
        np.testing.assert_array_equal(np.stack([s.reward for s in unclipped]), raw.astype(np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_atari_episodic_life(backend: str) -> None:
    """A life loss ends the learning episode (terminated) but not the game: lives and score go on,
    and the game's raw return and length span all its lives."""
    with closing(make_env("ALE/Breakout-v5", 1, seed=2, backend=backend)) as env:
        infos, steps = rollout(env, 500)
    lives = [int(infos["lives"][0])] + [int(s.infos["lives"][0]) for s in steps]
    assert lives[0] == 5
    game_end = next(t for t, s in enumerate(steps) if s.infos["episode_done"][0])
    rows = TransitionFilter(1)
    rows.reset(steps[0].obs)
    game_return, game_length, life_losses = 0.0, 0, 0
    for t, step in enumerate(steps[: game_end + 1]):
        valid = rows.step(step.action, step.reward, step.next_obs, step.terminated, step.truncated).valid
        game_return += step.infos["raw_reward"][0]
        game_length += 1
        assert lives[t + 1] <= lives[t], "the game was reset"
        if t < game_end:
            assert not step.infos["episode_done"][0]
            assert step.terminated[0] == (lives[t + 1] < lives[t])  # life loss -> terminated
            assert not step.truncated[0]
        if t > 0 and steps[t - 1].terminated[0]:  # the row after a life loss is not a transition
            assert not valid[0]
            life_losses += 1
    assert life_losses == 4 and lives[game_end + 1] == 0
    end = steps[game_end]
    assert end.terminated[0] and not end.truncated[0]
    assert end.infos["episode_return"][0] == game_return
    assert end.infos["episode_length"][0] == game_length
    # The next row starts a new game: 5 lives, nothing counted yet.
    assert steps[game_end + 1].infos["lives"][0] == 5 and steps[game_end + 1].infos["raw_reward"][0] == 0


def test_atari_without_episodic_life_terminates_only_at_game_over() -> None:
    with closing(make_env("ALE/Breakout-v5", 1, seed=2, episodic_life=False)) as env:
        _, steps = rollout(env, 300)
    terminated = np.array([s.terminated[0] for s in steps])
    done = np.array([s.infos["episode_done"][0] for s in steps])
    lives = np.array([s.infos["lives"][0] for s in steps])
    assert done.any() and (lives < 5).any()
    np.testing.assert_array_equal(terminated, done)


@pytest.mark.parametrize("backend", BACKENDS)
def test_atari_frame_cap_truncates(backend: str) -> None:
    """max_episode_frames counts emulator frames after the reset: 200 frames = 50 agent steps."""
    with closing(make_env("ALE/Pong-v5", 2, seed=0, backend=backend, max_episode_frames=200)) as env:
        _, steps = rollout(env, 52)
    for t, step in enumerate(steps[:49]):
        assert not (step.terminated.any() or step.truncated.any() or step.infos["episode_done"].any()), t
    cap = steps[49]
    assert cap.truncated.all() and not cap.terminated.any() and cap.infos["episode_done"].all()
    np.testing.assert_array_equal(cap.infos["episode_length"], [50, 50])
    np.testing.assert_array_equal(cap.infos["episode_return"], cap.infos["episode_return"].astype(int))
    reset_row = steps[50]  # NEXT_STEP: the reset observation of a new game
    assert not reset_row.next_obs[:, :-1].any() and not reset_row.truncated.any()


# --------------------------------------------------------------------------------------- autoreset


def test_transition_filter_hand_built_sequence() -> None:
    n = 3
    rows = TransitionFilter(n)
    with pytest.raises(RuntimeError):
        rows.step(np.zeros(n), np.zeros(n), np.zeros((n, 2)), np.zeros(n, bool), np.zeros(n, bool))
    obs0 = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    rows.reset(obs0)
    np.testing.assert_array_equal(rows.obs, obs0)
    # step: (terminated, truncated) per env -> expected valid rows
    sequence = [
        ([0, 0, 0], [0, 0, 0], [1, 1, 1]),
        ([1, 0, 0], [0, 0, 1], [1, 1, 1]),  # env 0 terminates, env 2 truncates
        ([0, 0, 0], [0, 0, 0], [0, 1, 0]),  # their rows are resets
        ([0, 1, 0], [0, 1, 0], [1, 1, 1]),  # env 1: both flags
        ([0, 0, 0], [0, 0, 0], [1, 0, 1]),
        ([1, 1, 1], [0, 0, 0], [1, 1, 1]),
        ([1, 0, 0], [0, 0, 0], [0, 0, 0]),  # a done reported on a reset row is ignored for that row...
        ([0, 0, 0], [0, 0, 0], [0, 1, 1]),  # ...but still makes the next row a reset
    ]
    prev_obs = obs0
    for k, (term, trunc, expected) in enumerate(sequence, start=1):
        next_obs = obs0 + 100 * k
        action = np.arange(n) + 10 * k
        reward = np.arange(n, dtype=np.float32) + 0.5 * k
        t = rows.step(action, reward, next_obs, np.array(term, bool), np.array(trunc, bool))
        valid = np.array(expected, bool)
        np.testing.assert_array_equal(t.valid, valid, err_msg=f"step {k}")
        np.testing.assert_array_equal(t.env_ids, np.flatnonzero(valid))
        np.testing.assert_array_equal(t.obs, prev_obs[valid])
        np.testing.assert_array_equal(t.next_obs, next_obs[valid])
        np.testing.assert_array_equal(t.action, action[valid])
        np.testing.assert_array_equal(t.reward, reward[valid])
        np.testing.assert_array_equal(t.terminated, np.array(term, bool)[valid])
        np.testing.assert_array_equal(t.truncated, np.array(trunc, bool)[valid])
        np.testing.assert_array_equal(rows.prev_done, np.array(term, bool) | np.array(trunc, bool))
        assert rows.obs is next_obs
        prev_obs = next_obs
    with pytest.raises(ValueError, match="terminated"):
        rows.step(action, reward, next_obs, np.zeros(n + 1, bool), np.zeros(n, bool))
    with pytest.raises(ValueError, match="truncated"):
        rows.step(action, reward, next_obs, np.zeros(n, bool), np.zeros(n, int))
    with pytest.raises(ValueError, match="next_obs"):
        rows.step(action, reward, next_obs[:2], np.zeros(n, bool), np.zeros(n, bool))
    with pytest.raises(ValueError, match="num_envs"):
        TransitionFilter(0)


def test_transition_filter_on_cartpole_time_limit() -> None:
    """CartPole truncated after 5 steps: each row after a done carries a fresh reset observation."""
    n = 3
    with closing(make_env("CartPole-v1", n, seed=4, max_episode_steps=5)) as env:
        _infos, steps = rollout(env, 40)
    rows = TransitionFilter(n)
    rows.reset(steps[0].obs)
    game_steps = np.zeros(n, dtype=int)
    resets = 0
    for step in steps:
        t = rows.step(step.action, step.reward, step.next_obs, step.terminated, step.truncated)
        for i in range(n):
            if t.valid[i]:
                game_steps[i] += 1
                assert game_steps[i] <= 5
                assert step.truncated[i] == (game_steps[i] == 5 and not step.terminated[i])
                assert step.infos["episode_done"][i] == (step.terminated[i] or step.truncated[i])
                if step.infos["episode_done"][i]:
                    assert step.infos["episode_length"][i] == game_steps[i]
                    assert step.infos["episode_return"][i] == game_steps[i]  # +1 per CartPole step
            else:  # the reset row: new episode, reset state in [-0.05, 0.05], nothing to learn from
                resets += 1
                assert np.abs(step.next_obs[i]).max() <= 0.05
                assert step.reward[i] == 0 and not (step.terminated[i] or step.truncated[i])
                assert step.infos["raw_reward"][i] == 0 and not step.infos["episode_done"][i]
                game_steps[i] = 0
        np.testing.assert_array_equal(t.next_obs, step.next_obs[t.valid])
    assert resets >= 3 * n


# ----------------------------------------------------------------------------------------- seeding


@pytest.mark.parametrize(
    "env_id, options",
    [
        ("ALE/Breakout-v5", {"backend": "ale_vector", "repeat_action_probability": 0.25}),
        ("ALE/Breakout-v5", {"backend": "gymnasium", "repeat_action_probability": 0.25}),
        ("CartPole-v1", {}),
    ],
)
def test_seeding_is_reproducible(env_id: str, options: dict[str, Any]) -> None:
    def trajectory(seed: int | None, reset_seed: int | None) -> list[np.ndarray]:
        with closing(make_env(env_id, 2, seed=seed, **options)) as env:
            obs, _ = env.reset(seed=reset_seed)
            out = [obs]
            for _ in range(60):
                obs, reward, terminated, truncated, infos = env.step(env.action_space.sample())
                out += [obs, reward, terminated, truncated, infos["raw_reward"]]
            return out

    def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
        return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    first = trajectory(seed=3, reset_seed=None)
    assert same(first, trajectory(seed=3, reset_seed=None))
    # reset(seed=s) seeds the envs as make_env(seed=s) does (the actions come from the seeded space).
    assert np.array_equal(first[0], trajectory(seed=None, reset_seed=3)[0])
    assert same(first, trajectory(seed=3, reset_seed=3))
    assert not same(first, trajectory(seed=4, reset_seed=None))


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "env_id, match",
    [
        ("ALE/NotAGame-v5", "env_id"),
        ("ALE/Pong-v4", "env_id"),
        ("NotAnEnv-v0", "env_id"),
        ("Blackjack-v1", "observation space"),
        ("Pendulum-v1", "action space"),
        ("PongNoFrameskip-v4", "ALE/<Game>-v5"),
    ],
)
def test_bad_env_id_raises_value_error(env_id: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as excinfo:
        make_env(env_id, 1)
    assert repr(env_id) in str(excinfo.value)


@pytest.mark.parametrize(
    "env_id, num_envs, seed, options, error, match",
    [
        ("ALE/Pong-v5", 1, None, {"backend": "envpool"}, ValueError, "backend"),
        ("ALE/Pong-v5", 1, None, {"repeat_action_probability": 1.5}, ValueError, "repeat_action_probability"),
        ("ALE/Pong-v5", 0, None, {}, ValueError, "num_envs"),
        ("CartPole-v1", 1, -1, {}, ValueError, "seed"),
        ("ALE/Pong-v5", 1, None, {"max_episode_steps": 10}, TypeError, "max_episode_steps"),
        ("CartPole-v1", 1, None, {"backend": "gymnasium"}, TypeError, "backend"),
        (42, 1, None, {}, TypeError, "env_id"),
    ],
)
def test_bad_arguments_are_named(
    env_id: Any, num_envs: int, seed: int | None, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make_env(env_id, num_envs, seed, **options)


@pytest.mark.parametrize("env_id", ["ALE/Pong-v5", "CartPole-v1"])
def test_bad_actions_raise_value_error(env_id: str) -> None:
    with closing(make_env(env_id, 2, seed=0)) as env:
        env.reset()
        with pytest.raises(ValueError, match="actions"):
            env.step(np.zeros(3, dtype=np.int64))
        with pytest.raises(ValueError, match="actions"):
            env.step(np.zeros(2, dtype=np.float32))
