"""pydqn's environment layer: `make_env` builds the vector env the training loop steps.

Every env is a gymnasium ``VectorEnv`` (``reset(seed=...) -> (obs, infos)``, ``step(actions) -> (obs,
rewards, terminated, truncated, infos)``, ``single_observation_space``, ``single_action_space``,
``observation_space``, ``action_space``, ``num_envs``, ``close()``) with a leading env axis on every
output, a ``Discrete`` single action space, and NEXT_STEP autoreset (use `TransitionFilter` to keep
only the rows that are transitions):

* ``ALE/<Game>-v5`` -> `pydqn.envs.atari.make_atari_env`: ``uint8 (num_envs, 4, 84, 84)`` observations
  with DQN-standard preprocessing, episodic life and clipped rewards, on the ``"ale_vector"`` (C++,
  default) or ``"gymnasium"`` backend;
* any other registered id with 1-D ``Box`` or ``Discrete`` observations ->
  `pydqn.envs.classic.make_classic_env`: ``float32 (num_envs, obs_dim)`` observations (one-hot for
  ``Discrete``).

Infos, on every ``reset`` and ``step``, each an array of shape ``(num_envs,)``:

=================== ======= ================================================================
key                 dtype   meaning
=================== ======= ================================================================
``raw_reward``      float64 the raw (unclipped) game reward of this step; 0 on reset rows
``episode_done``    bool    a whole GAME ended at this step (Atari: the last life, or the frame
                            cap; not a life loss), by termination or truncation
``episode_return``  float64 that game's raw score (sum of ``raw_reward`` over all its lives);
                            0 where ``episode_done`` is False
``episode_length``  int64   that game's length in agent steps; 0 where ``episode_done`` is False
``lives``           int64   Atari only: lives left
=================== ======= ================================================================

Rewards returned by ``step`` are what the agent learns from (float32; ``sign(raw)`` on Atari by
default); log ``episode_return`` where ``episode_done``.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv

from pydqn.envs.atari import BACKENDS, EMULATOR_FPS, FRAME_SKIP, AtariAgentEnv, is_atari_id, make_atari_env
from pydqn.envs.autoreset import (
    EPISODE_DONE,
    EPISODE_LENGTH,
    EPISODE_RETURN,
    INFO_KEYS,
    RAW_REWARD,
    EpisodeTracker,
    TransitionFilter,
    Transitions,
)
from pydqn.envs.classic import ClassicAgentEnv, make_classic_env
from pydqn.envs.spaces import num_actions

__all__ = [
    "BACKENDS",
    "EMULATOR_FPS",
    "EPISODE_DONE",
    "EPISODE_LENGTH",
    "EPISODE_RETURN",
    "FRAME_SKIP",
    "INFO_KEYS",
    "RAW_REWARD",
    "AtariAgentEnv",
    "ClassicAgentEnv",
    "EpisodeTracker",
    "TransitionFilter",
    "Transitions",
    "frames_per_step",
    "is_atari_id",
    "make_atari_env",
    "make_classic_env",
    "make_env",
    "num_actions",
]


def frames_per_step(env_id: str) -> int:
    """Emulator frames per agent step of the envs `make_env` builds: ``FRAME_SKIP`` for Atari, 1
    for the others (frames/s figures count emulator frames, as the Atari literature does)."""
    return FRAME_SKIP if is_atari_id(env_id) else 1


def make_env(env_id: str, num_envs: int, seed: int | None = None, **options: Any) -> VectorEnv:
    """Build ``num_envs`` copies of ``env_id`` as one vector env (see the module docstring).

    Args:
        env_id: ``"ALE/<Game>-v5"`` or a registered gymnasium id such as ``"CartPole-v1"``.
        num_envs: number of envs, >= 1.
        seed: makes runs reproducible: the first ``reset()`` without a seed uses it (env ``i`` gets
            ``seed + i``, as ``reset(seed=seed)`` does) and it seeds the action spaces. ``None``:
            unseeded.
        **options: keyword options of `make_atari_env` (``backend``, ``repeat_action_probability``,
            ``episodic_life``, ...) or of `make_classic_env` (``max_episode_steps``, ``env_kwargs``).

    Raises:
        TypeError: ``env_id`` is not a str, or an option is not one the env's factory accepts.
        ValueError: naming the argument: unknown ``env_id``, unsupported observation/action space,
            ``num_envs`` < 1, a negative or too large ``seed``, or an out-of-range option.
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env_id: expected a str such as 'ALE/Pong-v5' or 'CartPole-v1', got {env_id!r}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs: expected an int >= 1, got {num_envs!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed: expected None or an int >= 0, got {seed!r}")
    factory = make_atari_env if is_atari_id(env_id) else make_classic_env
    accepted = [
        name
        for name, p in inspect.signature(factory).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        kind = "an Atari" if factory is make_atari_env else "a classic (vector-observation)"
        raise TypeError(
            f"make_env: option(s) {unknown} not accepted for {env_id!r}, {kind} env; accepted: {accepted}"
        )
    return factory(env_id, int(num_envs), None if seed is None else int(seed), **options)
