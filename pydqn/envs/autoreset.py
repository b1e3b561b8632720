"""Episode boundaries under NEXT_STEP autoreset: which rows of a step are transitions, and episode stats.

Every pydqn vector env (see `pydqn.envs.make_env`) autoresets in gymnasium's ``NEXT_STEP`` mode: when
env ``i`` reports ``terminated[i] or truncated[i]`` at step ``t``, the *next* ``step()`` ignores
``actions[i]`` and returns env ``i``'s reset observation, with reward 0 and both flags False. That row
of step ``t+1`` is not a transition. The rule is uniform over all backends (the Atari episodic-life
"continue after a life loss" step is such a row too), so one small stateful `TransitionFilter` tells
the training loop which rows to store.

`EpisodeTracker` keeps each env's running raw return and length per GAME (for Atari: across lives) and
produces the episode-statistics info keys that every pydqn env emits; their names are the constants
below.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

#: ``float64 (num_envs,)``: the raw (unclipped) game reward of this step; 0 on rows that are resets.
RAW_REWARD = "raw_reward"
#: ``bool (num_envs,)``: a whole game (for Atari: not a life) ended at this step, by termination or
#: truncation; ``EPISODE_RETURN`` and ``EPISODE_LENGTH`` are meaningful exactly where this is True.
EPISODE_DONE = "episode_done"
#: ``float64 (num_envs,)``: the ended game's raw return (sum of ``RAW_REWARD``); 0 where not done.
EPISODE_RETURN = "episode_return"
#: ``int64 (num_envs,)``: the ended game's length in agent steps (reset rows excluded); 0 where not done.
EPISODE_LENGTH = "episode_length"

INFO_KEYS: tuple[str, ...] = (RAW_REWARD, EPISODE_DONE, EPISODE_RETURN, EPISODE_LENGTH)


class Transitions(NamedTuple):
    """The real transitions of one vector step: only the rows selected by ``valid``.

    ``obs``/``action``/``reward``/``next_obs``/``terminated``/``truncated`` hold only the rows
    ``env_ids`` (all rows, unindexed and uncopied, when every row is valid), ready for
    ``ReplayBuffer.add(..., env_ids=env_ids)``.
    """

    valid: NDArray[np.bool_]
    env_ids: NDArray[np.int64]
    obs: Any
    action: Any
    reward: Any
    next_obs: Any
    terminated: NDArray[np.bool_]
    truncated: NDArray[np.bool_]


def _check_mask(name: str, value: Any, num_envs: int) -> NDArray[np.bool_]:
    array = np.asarray(value)
    if array.dtype != np.bool_ or array.shape != (num_envs,):
        raise ValueError(
            f"{name}: expected a bool array of shape ({num_envs},), "
            f"got dtype {array.dtype} shape {array.shape}"
        )
    return array


def _check_rows(name: str, value: Any, num_envs: int) -> None:
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) == 0 or shape[0] != num_envs:
        raise ValueError(
            f"{name}: expected an array with a leading axis of {num_envs} env rows, "
            f"got {type(value).__name__} of shape {shape}"
        )


class TransitionFilter:
    """Pairs each step's rows with the previous observation and drops the rows that are resets.

    Usage in a training loop::

        obs, _ = env.reset(seed=0)
        rows = TransitionFilter(env.num_envs)
        rows.reset(obs)
        while training:
            actions = policy(rows.obs)
            next_obs, rewards, terminated, truncated, infos = env.step(actions)
            t = rows.step(actions, rewards, next_obs, terminated, truncated)
            if len(t.env_ids):
                buffer.add(t.obs, t.action, t.reward, t.next_obs, t.terminated, t.truncated,
                           env_ids=t.env_ids)

    Row ``i`` of a step is a transition ``(obs[i], action[i], reward[i], next_obs[i], ...)`` exactly
    when env ``i`` did not report ``terminated or truncated`` at the previous step (NEXT_STEP
    autoreset: otherwise ``next_obs[i]`` is a reset observation and ``action[i]`` was ignored).
    Terminated transitions must not bootstrap; truncated ones must.

    The filter keeps a reference to the last ``next_obs`` (pydqn envs return a fresh array each step).
    """

    def __init__(self, num_envs: int) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs: expected an int >= 1, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self._obs: Any = None
        self._prev_done = np.zeros(self.num_envs, dtype=np.bool_)

    @property
    def obs(self) -> Any:
        """The observation the agent acts on now: the last ``reset``/``step`` observation."""
        if self._obs is None:
            raise RuntimeError("TransitionFilter: call reset(obs) with the env's reset observation first")
        return self._obs

    @property
    def prev_done(self) -> NDArray[np.bool_]:
        """Rows whose env reported terminated or truncated at the last step (their next row is a reset)."""
        return self._prev_done.copy()

    def reset(self, obs: Any) -> None:
        """Start over from a full ``env.reset()`` observation: every row of the next step is valid."""
        _check_rows("obs", obs, self.num_envs)
        self._obs = obs
        self._prev_done = np.zeros(self.num_envs, dtype=np.bool_)

    def valid_rows(self, terminated: Any, truncated: Any) -> NDArray[np.bool_]:
        """Advance the done-tracking only, returning which rows of this step are transitions.

        Equivalent to `step` for callers that pair observations themselves.
        """
        term = _check_mask("terminated", terminated, self.num_envs)
        trunc = _check_mask("truncated", truncated, self.num_envs)
        valid = ~self._prev_done
        self._prev_done = term | trunc
        return valid

    def step(self, action: Any, reward: Any, next_obs: Any, terminated: Any, truncated: Any) -> Transitions:
        """Take one vector step's outputs; return its real transitions and remember ``next_obs``.

        ``action``, ``reward`` and ``next_obs`` may be numpy arrays or anything else indexable by a
        numpy bool mask with a leading axis of ``num_envs`` rows (e.g. CPU tensors).
        """
        obs = self.obs
        for name, value in (("action", action), ("reward", reward), ("next_obs", next_obs)):
            _check_rows(name, value, self.num_envs)
        term = _check_mask("terminated", terminated, self.num_envs)
        trunc = _check_mask("truncated", truncated, self.num_envs)
        valid = self.valid_rows(term, trunc)
        self._obs = next_obs
        if valid.all():
            return Transitions(
                valid, np.arange(self.num_envs, dtype=np.int64), obs, action, reward, next_obs, term, trunc
            )
        return Transitions(
            valid,
            np.flatnonzero(valid).astype(np.int64),
            obs[valid],
            action[valid],
            reward[valid],
            next_obs[valid],
            term[valid],
            trunc[valid],
        )


class EpisodeTracker:
    """Per-env running raw return and length of the current game; emits the episode info keys.

    Each step the caller says, per env, the raw reward, whether the row advanced the game in progress
    (``game_step``: False on NEXT_STEP reset rows) and whether the game ended (``game_over``).
    """

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self._returns = np.zeros(num_envs, dtype=np.float64)
        self._lengths = np.zeros(num_envs, dtype=np.int64)

    def reset(self) -> dict[str, NDArray[Any]]:
        """Forget every game in progress (a full reset); return the infos of a reset (nothing ended)."""
        self._returns[:] = 0.0
        self._lengths[:] = 0
        n = self.num_envs
        return {
            RAW_REWARD: np.zeros(n, dtype=np.float64),
            EPISODE_DONE: np.zeros(n, dtype=np.bool_),
            EPISODE_RETURN: np.zeros(n, dtype=np.float64),
            EPISODE_LENGTH: np.zeros(n, dtype=np.int64),
        }

    def step(
        self, raw_reward: NDArray[Any], game_step: NDArray[np.bool_], game_over: NDArray[np.bool_]
    ) -> dict[str, NDArray[Any]]:
        """Account one vector step and return its episode infos (see the module's key constants)."""
        raw = np.where(game_step, raw_reward, 0.0).astype(np.float64)
        self._returns += raw
        self._lengths += game_step
        done = game_over.astype(np.bool_, copy=True)
        episode_return = np.where(done, self._returns, 0.0)
        episode_length = np.where(done, self._lengths, 0)
        self._returns[done] = 0.0
        self._lengths[done] = 0
        return {
            RAW_REWARD: raw,
            EPISODE_DONE: done,
            EPISODE_RETURN: episode_return,
            EPISODE_LENGTH: episode_length,
        }
