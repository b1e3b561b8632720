"""What an SB3 or CleanRL ``add`` call says about episode ends, and which of its rows are gymnasium
NEXT_STEP autoreset steps that must not be stored.

Two conventions reach ``ReplayBuffer.add``:

- SB3's off-policy loop: ``done`` is terminated or truncated, ``infos`` a list of one dict per env
  whose ``"TimeLimit.truncated"`` marks a truncation, and ``next_obs`` already the real final
  observation (SB3 substitutes ``infos[i]["terminal_observation"]``).
- CleanRL's: ``done`` holds the terminations only, ``infos`` is the single dict of a gymnasium
  vector env, and the caller substituted the real next observation. An episode end shows in its
  masks: ``_final_obs`` (gymnasium 1.x, same-step autoreset), ``_final_observation`` (gymnasium
  0.29), ``_episode`` (``RecordEpisodeStatistics``) or ``_TimeLimit.truncated``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

# A gymnasium vector env's infos hold each key's per-env values beside a "_key" mask of the envs
# that reported it; these masks mark the envs whose episode ended at this step.
END_MASKS = ("_final_obs", "_final_observation", "_episode", "_TimeLimit.truncated")
# Where same-step vector envs (gymnasium 1.x, 0.29) leave an ended episode's final observation.
FINAL_OBS = (("final_obs", "_final_obs"), ("final_observation", "_final_observation"))


# Per env row: terminated (the rows SB3 samples as done: not bootstrapped), truncated (the other
# rows that end an episode), and awaiting_reset: the rows that ended without their final
# observation in infos, as a NEXT_STEP vector env ends them (None: no such row; SB3's calls never
# have one). A plain tuple: add() builds one per env step.
EpisodeEnds = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def episode_ends(done: Any, infos: Any, n_envs: int, *, handle_timeout_termination: bool) -> EpisodeEnds:
    """The episode ends an ``add`` call's ``done`` and ``infos`` describe (see the module docs)."""
    done = per_env_flags("done", done, n_envs)
    if isinstance(infos, dict):
        ended, with_final = done.copy(), np.zeros(n_envs, dtype=bool)
        for key in END_MASKS:
            if key in infos:
                mask = per_env_flags(f"infos[{key!r}]", infos[key], n_envs)
                if key == "_TimeLimit.truncated":
                    mask = mask & per_env_flags(
                        "infos['TimeLimit.truncated']", infos["TimeLimit.truncated"], n_envs
                    )
                ended |= mask
                if any(key == final_mask for _, final_mask in FINAL_OBS):
                    with_final |= mask
        awaiting = ended & ~with_final
        return done, ended & ~done, awaiting if awaiting.any() else None
    try:
        timeouts = [info.get("TimeLimit.truncated", False) for info in infos]
    except (AttributeError, TypeError):
        timeouts = []
    if len(timeouts) != n_envs:
        raise ValueError(
            f"infos: expected a list of {n_envs} dicts, one per env (SB3), or a gymnasium vector "
            f"env's info dict (CleanRL), got {_describe(infos)}"
        )
    if not (handle_timeout_termination and any(timeouts)):
        return done, no_flags(n_envs), None
    terminated = done & ~np.array(timeouts, dtype=bool)
    return terminated, done & ~terminated, None


@functools.cache
def no_flags(n_envs: int) -> np.ndarray:
    """n_envs False flags, read-only: shared by every call that truncates nothing."""
    flags = np.zeros(n_envs, dtype=bool)
    flags.flags.writeable = False
    return flags


def with_final_obs(next_obs: Any, infos: Any) -> Any:
    """``next_obs`` whose rows of ended episodes are the final observations a gymnasium vector
    env's infos carry. CleanRL substitutes them for truncations only, leaving a terminated row's
    ``next_obs`` the next episode's reset observation, which breaks a frame stack (and is never
    bootstrapped from); SB3's loop substitutes both, as this does."""
    if not isinstance(infos, dict):
        return next_obs
    for key, mask_key in FINAL_OBS:
        if key not in infos or mask_key not in infos:
            continue
        ended = np.flatnonzero(per_env_flags(f"infos[{mask_key!r}]", infos[mask_key], len(infos[mask_key])))
        if len(ended) == 0:
            return next_obs
        real = np.array(next_obs)
        for env in ended:
            final = np.asarray(infos[key][env])
            if final.shape != real.shape[1:]:
                raise ValueError(
                    f"infos[{key!r}][{env}]: expected a final observation of shape {real.shape[1:]}, "
                    f"got shape {final.shape}"
                )
            real[env] = final
        return real
    return next_obs


def per_env_flags(name: str, value: Any, n_envs: int) -> np.ndarray:
    """``value`` as n_envs bools; refused unless each is 0 or 1 (or a bool)."""
    array = np.asarray(value)
    if array.shape != (n_envs,):
        if array.shape != (n_envs, 1) and not (n_envs == 1 and array.shape == ()):
            raise ValueError(f"{name}: expected {n_envs} flags, one per env, got shape {array.shape}")
        array = array.reshape(n_envs)
    if array.dtype == np.bool_:
        return array
    if array.dtype.kind not in "biuf" or not ((array == 0) | (array == 1)).all():
        raise ValueError(f"{name}: expected bools (or 0/1), got {array.tolist()}")
    return array != 0


class AutoresetRows:
    """Spots gymnasium 1.x NEXT_STEP autoreset rows: after an env's episode ends, its vector env's
    next step only resets it, returning ``(final obs -> reset obs)`` with reward 0 and no flags.
    Such a row is no transition (its action was never taken), so the buffer drops it.

    A row is taken for one when its env's previous row ended the episode without the final
    observation in ``infos`` (`episode_ends`' awaiting_reset: SB3's vector envs and gymnasium's
    same-step mode always give it, and start the next episode from the reset observation), and it
    starts from that row's ``next_obs`` bit for bit, with reward 0, neither terminated nor
    truncated. (An env whose reset observation equals its final one would have such a first step
    dropped, never stored wrong.)
    """

    def __init__(self) -> None:
        self._final_obs: dict[int, np.ndarray] = {}  # env -> next_obs of its episode-ending row

    def find(self, obs: Any, reward: Any, terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray | None:
        """Which rows are autoreset steps; None when no env awaits its reset (most calls)."""
        if not self._final_obs:
            return None
        ended = terminated | truncated
        obs, reward = np.asarray(obs), np.asarray(reward).reshape(-1)
        if len(obs) != len(ended) or len(reward) != len(ended):
            return None  # malformed: add()'s checks name it
        found = np.zeros(len(obs), dtype=bool)
        for env, final in self._final_obs.items():
            found[env] = reward[env] == 0 and not ended[env] and np.array_equal(obs[env], final)
        return found

    def record(self, next_obs: Any, awaiting_reset: np.ndarray | None, dropped: np.ndarray | None) -> None:
        """Remembers the rows of a stored call whose envs now await their reset step."""
        if awaiting_reset is None:
            self._final_obs.clear()
            return
        self._final_obs = {
            env: np.array(next_obs[env])
            for env in np.flatnonzero(awaiting_reset).tolist()
            if dropped is None or not dropped[env]
        }

    def forget(self) -> None:
        """Episodes were ended without a row: no env's next row can be an autoreset step."""
        self._final_obs.clear()

    @property
    def nbytes(self) -> int:
        return sum(final.nbytes for final in self._final_obs.values())


def _describe(value: Any) -> str:
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} ({', '.join(type(v).__name__ for v in value[:3])})"
    return type(value).__name__
