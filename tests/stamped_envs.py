"""A fake Atari-shaped vector env whose frames stamp what happened, so that any stored transition can
be checked from its own observations (the Ape-X tests' oracle).

Frame pixel row 0 holds the stamp: the env's ``source`` (its seed, which names the actor), the env
index, the episode, the step ``t`` within it (two bytes) and the action that led to the frame. A
stacked observation holds frames t-3..t (frame 0 repeated before the episode's start), as Atari
stacks do. Step t's reward is `reward_of` the stamp, and episode ``e`` of env ``i`` lasts
`episode_length` steps, ending terminated for even episodes, truncated for odd ones. It follows
pydqn's env conventions: NEXT_STEP autoreset and the episode infos.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv

from pydqn.envs import EPISODE_DONE, EPISODE_LENGTH, EPISODE_RETURN, RAW_REWARD

STACK, SIDE, ACTIONS = 4, 84, 3
SOURCE, ENV, EPISODE, STEP_HI, STEP_LO, ACTION = range(6)


def episode_length(source: int, env: int, episode: int) -> int:
    return 3 + (source * 5 + env * 7 + episode * 3) % 9


def reward_of(t: int, action: int) -> float:
    """The reward of the step from t to t+1 with ``action`` (exact in float32)."""
    return float(action + 1) * 0.25 + (t % 4) * 0.125


def frame(source: int, env: int, episode: int, t: int, action: int) -> np.ndarray:
    image = np.full((SIDE, SIDE), (source + episode + t) % 200, dtype=np.uint8)
    image[0, :6] = (source % 256, env, episode % 256, t // 256, t % 256, action)
    return image


def stamp(image: np.ndarray) -> tuple[int, int, int, int, int]:
    """(source, env, episode, t, action) of a frame."""
    row = image[0].astype(np.int64)
    return (
        int(row[SOURCE]),
        int(row[ENV]),
        int(row[EPISODE]),
        int(row[STEP_HI] * 256 + row[STEP_LO]),
        int(row[ACTION]),
    )


class StampedEnvs(VectorEnv):
    """``num_envs`` stamped envs as one pydqn-style vector env (``source``: the seed's low byte)."""

    def __init__(self, num_envs: int, seed: int) -> None:
        self.num_envs, self.source = num_envs, seed % 256
        self.single_observation_space = gym.spaces.Box(0, 255, (STACK, SIDE, SIDE), np.uint8)
        self.single_action_space = gym.spaces.Discrete(ACTIONS)
        self.observation_space = gym.spaces.Box(0, 255, (num_envs, STACK, SIDE, SIDE), np.uint8)
        self.action_space = gym.spaces.MultiDiscrete([ACTIONS] * num_envs)
        self.episode = np.zeros(num_envs, dtype=np.int64)
        self.t = np.zeros(num_envs, dtype=np.int64)
        self.stacks = np.zeros((num_envs, STACK, SIDE, SIDE), dtype=np.uint8)
        self.returns = np.zeros(num_envs)
        self.ended = np.zeros(num_envs, dtype=bool)

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        # Episodes numbered from the reset's seed: a restarted actor (reset at another step)
        # stamps other episodes than the process it replaced, so a transition stitched across
        # the two would show.
        self.episode[:] = 2 * ((seed or 0) % 100)
        for env in range(self.num_envs):
            self._start(env)
        self.ended[:] = False
        return self.stacks.copy(), self._infos(np.zeros(self.num_envs, dtype=bool))

    def _start(self, env: int) -> None:
        self.t[env], self.returns[env] = 0, 0.0
        self.stacks[env] = frame(self.source, env, int(self.episode[env]), 0, 0)

    def step(self, actions: np.ndarray) -> tuple[Any, ...]:
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        done = np.zeros(self.num_envs, dtype=bool)
        lengths = np.zeros(self.num_envs, dtype=np.int64)
        returns = np.zeros(self.num_envs)
        for env, action in enumerate(np.asarray(actions).tolist()):
            if self.ended[env]:  # NEXT_STEP autoreset: this step only resets
                self.episode[env] += 1
                self._start(env)
                self.ended[env] = False
                continue
            episode, t = int(self.episode[env]), int(self.t[env])
            rewards[env] = reward_of(t, action)
            self.returns[env] += rewards[env]
            self.t[env] = t + 1
            self.stacks[env] = np.concatenate(
                [self.stacks[env, 1:], frame(self.source, env, episode, t + 1, action)[None]]
            )
            if t + 1 == episode_length(self.source, env, episode):
                terminated[env], truncated[env] = episode % 2 == 0, episode % 2 == 1
                done[env], lengths[env], returns[env] = True, t + 1, self.returns[env]
                self.ended[env] = True
        infos = self._infos(done)
        infos[EPISODE_LENGTH], infos[EPISODE_RETURN] = lengths, returns
        infos[RAW_REWARD] = rewards.astype(np.float64)
        return self.stacks.copy(), rewards, terminated, truncated, infos

    def _infos(self, done: np.ndarray) -> dict[str, Any]:
        n = self.num_envs
        return {
            RAW_REWARD: np.zeros(n),
            EPISODE_DONE: done,
            EPISODE_RETURN: np.zeros(n),
            EPISODE_LENGTH: np.zeros(n, dtype=np.int64),
        }

    def close(self, **kwargs: Any) -> None:
        pass


def check_transition(transition: tuple, n_step: int, gamma: float, cut_allowed: bool) -> None:
    """Assert that one stored transition is what a stamped env stepped: frames, action, the n-step
    reward, flags and discount (``cut_allowed``: a window may end early without an episode end,
    where an actor failed). ``transition``: (obs, action, reward, next_obs, terminated, truncated,
    discount)."""
    obs, action, reward, next_obs, terminated, truncated, discount = transition
    stamps = [stamp(f) for f in obs]
    source, env, episode, t, _ = stamps[-1]
    for j, (s, e, ep, tj, _) in enumerate(stamps):
        assert (s, e, ep, tj) == (source, env, episode, max(0, t - (STACK - 1 - j))), stamps
    next_stamps = [stamp(f) for f in next_obs]
    s, e, ep, t_next, _ = next_stamps[-1]
    assert (s, e, ep) == (source, env, episode), (stamps, next_stamps)
    steps = t_next - t
    assert 1 <= steps <= n_step, (t, t_next)
    length = episode_length(source, env, episode)
    ended = t_next == length
    assert terminated == (ended and episode % 2 == 0) and truncated == (ended and episode % 2 == 1)
    if steps < n_step and not ended:
        assert cut_allowed, f"a window cut at {steps} steps without an episode end: {stamps}"
    actions = {tj: a for (_, _, _, tj, a) in next_stamps}
    assert action == actions[t + 1]
    expected = sum(gamma**k * reward_of(t + k, actions[t + k + 1]) for k in range(steps))
    assert abs(reward - expected) < 1e-5, (reward, expected)
    assert abs(discount - gamma**steps) < 1e-6
