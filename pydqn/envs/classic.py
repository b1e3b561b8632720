"""Vector-observation gymnasium envs: CartPole-v1, Acrobot-v1, MountainCar-v0, LunarLander-v3, FrozenLake-v1.

`make_classic_env` builds a ``gymnasium.vector.SyncVectorEnv`` (NEXT_STEP autoreset, like every pydqn
env) wrapped in `ClassicAgentEnv`, which emits:

* observations as ``float32 (num_envs, obs_dim)``: a 1-D ``Box`` is cast to float32; a ``Discrete(n)``
  observation (FrozenLake, Taxi, ...) is one-hot encoded to ``(num_envs, n)``; no frame stacking;
* rewards as float32 (unclipped), and ``terminated``/``truncated`` as the env reports them
  (``truncated`` from its ``TimeLimit``);
* infos: the sub-envs' own (merged by SyncVectorEnv) plus ``"raw_reward"``, ``"episode_done"``,
  ``"episode_return"`` and ``"episode_length"`` (see `pydqn.envs.autoreset`; an episode is a game here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box, Discrete
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space
from numpy.typing import NDArray

from pydqn.envs.autoreset import EpisodeTracker


class ClassicAgentEnv(VectorWrapper):
    """Float32 (one-hot for Discrete) observations, float32 rewards and episode infos over a NEXT_STEP env.

    ``seed`` seeds the first ``reset()`` that is given no seed (env ``i`` gets ``seed + i``) and the
    action spaces.
    """

    def __init__(self, env: VectorEnv, seed: int | None = None) -> None:
        super().__init__(env)
        if env.metadata.get("autoreset_mode") != AutoresetMode.NEXT_STEP:
            raise ValueError(f"env: expected NEXT_STEP autoreset, got {env.metadata.get('autoreset_mode')!r}")
        space = env.single_observation_space
        if isinstance(space, Discrete):
            self._one_hot: tuple[int, int] | None = (int(space.start), int(space.n))
            single = Box(0.0, 1.0, shape=(int(space.n),), dtype=np.float32)
        else:
            self._one_hot = None
            assert isinstance(space, Box)  # make_classic_env accepts Box and Discrete only
            single = Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)
        self.single_observation_space = single
        self.observation_space = batch_space(single, env.num_envs)
        self._eye = np.eye(self._one_hot[1], dtype=np.float32) if self._one_hot else None
        self._pending_seed = seed
        self._tracker = EpisodeTracker(env.num_envs)
        self._prev_done = np.zeros(env.num_envs, dtype=np.bool_)
        if seed is not None:
            self.action_space.seed(seed)
            self.single_action_space.seed(seed)

    def _obs(self, obs: Any) -> NDArray[np.float32]:
        if self._one_hot is None:
            return np.asarray(obs, dtype=np.float32)
        start, _ = self._one_hot
        assert self._eye is not None
        return self._eye[np.asarray(obs, dtype=np.int64) - start]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Reset every env; ``seed=s`` seeds env ``i`` with ``s + i``."""
        if options:
            raise ValueError(f"options: expected None (partial resets are not supported), got {options!r}")
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise ValueError(f"seed: expected None or an int >= 0, got {seed!r}")
        obs, infos = self.env.reset(seed=None if seed is None else int(seed))
        self._prev_done[:] = False
        infos = dict(infos)
        infos.update(self._tracker.reset())
        return self._obs(obs), infos

    def step(
        self, actions: Any
    ) -> tuple[
        NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_], NDArray[np.bool_], dict[str, Any]
    ]:
        """Step every env (rows after a done are NEXT_STEP resets)."""
        array = np.asarray(actions)
        if array.shape != (self.num_envs,) or array.dtype.kind not in "iu":
            raise ValueError(
                f"actions: expected an integer array of shape ({self.num_envs},), "
                f"got dtype {array.dtype} shape {array.shape}"
            )
        obs, rewards, terminated, truncated, infos = self.env.step(array)
        terminated = np.asarray(terminated, dtype=np.bool_)
        truncated = np.asarray(truncated, dtype=np.bool_)
        game_step = ~self._prev_done
        self._prev_done = terminated | truncated
        infos = dict(infos)
        infos.update(
            self._tracker.step(np.asarray(rewards, dtype=np.float64), game_step, self._prev_done & game_step)
        )
        return self._obs(obs), np.asarray(rewards, dtype=np.float32), terminated, truncated, infos


def make_classic_env(
    env_id: str,
    num_envs: int,
    seed: int | None = None,
    *,
    max_episode_steps: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> ClassicAgentEnv:
    """Build ``num_envs`` copies of a registered gymnasium env with vector or Discrete observations.

    Args:
        env_id: a registered gymnasium id, e.g. ``"CartPole-v1"`` or ``"FrozenLake-v1"``.
        num_envs: number of envs (rows of every output).
        seed: seeds the first ``reset()`` without a seed and the action spaces; ``None``: unseeded.
        max_episode_steps: override the env's ``TimeLimit`` (``None``: the registered one).
        env_kwargs: extra keyword arguments for ``gymnasium.make`` (e.g. ``{"is_slippery": False}``).

    Raises ValueError naming ``env_id`` for an unregistered id, an observation space that is not a 1-D
    ``Box`` or a ``Discrete``, or an action space that is not ``Discrete`` (DQN needs discrete actions).
    A registered env whose extra dependency is missing (LunarLander without box2d) raises gymnasium's
    ``DependencyNotInstalled``.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs: expected an int >= 1, got {num_envs!r}")
    if max_episode_steps is not None and (
        isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int) or max_episode_steps < 1
    ):
        raise ValueError(f"max_episode_steps: expected None or an int >= 1, got {max_episode_steps!r}")
    kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    try:
        gym.spec(env_id)
    except gym.error.Error as e:
        raise ValueError(
            f"env_id: expected a registered gymnasium id (e.g. 'CartPole-v1') or "
            f"'ALE/<Game>-v5', got {env_id!r} ({e})"
        ) from e

    env = SyncVectorEnv(
        [lambda: gym.make(env_id, **kwargs) for _ in range(int(num_envs))],
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )
    obs_space, act_space = env.single_observation_space, env.single_action_space
    problem = None
    if not (isinstance(obs_space, Discrete) or (isinstance(obs_space, Box) and len(obs_space.shape) == 1)):
        problem = f"observation space: expected a 1-D Box or a Discrete, got {obs_space}"
        if isinstance(obs_space, Box) and len(obs_space.shape) > 1:
            problem += " (for Atari pixels use an 'ALE/<Game>-v5' id)"
    elif not isinstance(act_space, Discrete) or int(act_space.start) != 0:
        problem = f"action space: expected Discrete starting at 0 (DQN), got {act_space}"
    if problem is not None:
        env.close()
        raise ValueError(f"env_id: {env_id!r} is unsupported, its {problem}")
    return ClassicAgentEnv(env, seed=seed)
