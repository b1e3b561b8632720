"""Atari (``ALE/<Game>-v5``) vector envs with DQN-standard preprocessing, on two interchangeable backends.

Backends (``backend=`` option of `make_atari_env`):

* ``"ale_vector"`` (default, fast): ale-py's C++ ``ale_py.vector_env.AtariVectorEnv``; preprocessing
  and frame stacking run in C++ threads that release the GIL.
* ``"gymnasium"`` (fallback): a ``gymnasium.vector.SyncVectorEnv`` of ``gym.make("ALE/<Game>-v5",
  frameskip=1)`` envs wrapped in `NoopFireReset`, `FrameLimit`, gymnasium's ``AtariPreprocessing`` and
  ``FrameStackObservation``, built to match the C++ env frame for frame.

Both feed `AtariAgentEnv`, which adds what the agent sees on top of a game-level env: episodic life,
reward clipping and the raw-score infos. The semantics, identical on both backends:

* Reset: ``reset_game``, then FIRE (one frame) when ``fire_reset`` and the game has FIRE, then
  ``U{0..noop_max-1}`` no-op frames minus one if FIRE was pressed (ale-py's rule: "up to 30 no-ops").
* Step: the action repeated for ``frame_skip`` frames; the observation is the pixel-wise max of the
  last two frames, grayscale, resized to ``screen_size`` x ``screen_size`` with ``cv2.INTER_AREA``.
* Observation: ``uint8 (num_envs, frame_stack, screen_size, screen_size)``, oldest frame first; the
  first observation of a game is zero-padded (frames 0..frame_stack-2 all zero).
* Truncation after ``max_episode_frames`` emulator frames (default 108,000 = 27,000 agent steps at frame
  skip 4) counted from the end of the reset; the frame skip stops early at the cap or at game over.
* ``episodic_life``: a life loss reports ``terminated=True`` (learning episode over) but the game goes
  on. Like every done row under NEXT_STEP autoreset, the next ``step()`` ignores that env's action: it
  plays one continuation step (FIRE if ``fire_reset`` and the game has FIRE, else NOOP) whose
  observation starts the next learning episode; the frame stack is not cleared.
* Rewards: ``sign(raw)`` as float32 when ``clip_rewards``, else raw. ``terminated`` and ``truncated``
  are never both True (a life lost on the last allowed frame reports ``terminated``).

Infos (all ``(num_envs,)`` arrays, every step and reset): ``"raw_reward"``, ``"episode_done"``,
``"episode_return"``, ``"episode_length"`` (see `pydqn.envs.autoreset`; a game ends when the last
life is lost or the frame cap truncates it) and ``"lives"`` (int64, lives left).
"""

from __future__ import annotations

from typing import Any, Literal

import ale_py
import gymnasium as gym
import numpy as np
from ale_py.vector_env import AtariVectorEnv
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation
from numpy.typing import NDArray

from pydqn.envs.autoreset import EpisodeTracker
from pydqn.envs.spaces import num_actions

gym.register_envs(ale_py)

ATARI_PREFIX = "ALE/"
FRAME_SKIP = 4  # emulator frames per agent step, the DQN standard (Mnih et al. 2015)
EMULATOR_FPS = 60  # the Atari 2600's frame rate
Backend = Literal["ale_vector", "gymnasium"]
BACKENDS: tuple[str, ...] = ("ale_vector", "gymnasium")
_INT32_MAX = 2**31 - 1


def is_atari_id(env_id: str) -> bool:
    """Whether ``env_id`` names an ALE env (``ALE/...``), i.e. belongs to `make_atari_env`."""
    return env_id.startswith(ATARI_PREFIX)


def atari_rom(env_id: str) -> str:
    """The ale-py ROM name of an ``ALE/<Game>-v5`` id: ``"ALE/SpaceInvaders-v5"`` -> ``"space_invaders"``.

    Raises ValueError naming ``env_id`` for anything else.
    """
    expected = "an ALE id of the form 'ALE/<Game>-v5', e.g. 'ALE/Breakout-v5'"
    if not (is_atari_id(env_id) and env_id.endswith("-v5")):
        raise ValueError(f"env_id: expected {expected}, got {env_id!r}")
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as e:
        raise ValueError(f"env_id: expected {expected} naming an installed game, got {env_id!r} ({e})") from e
    game = spec.kwargs.get("game")
    if not isinstance(game, str):
        raise ValueError(f"env_id: expected {expected}, got {env_id!r} (its spec names no ALE game)")
    return game


class NoopFireReset(gym.Wrapper):
    """Reset like ale-py's C++ vector env: reset, FIRE (if used), then random no-op frames.

    Wraps an ALE env with ``frameskip=1``. After ``reset_game`` it presses FIRE for one frame when
    ``fire`` and the game's action set has FIRE, then plays ``U{0..noop_max-1}`` no-op frames, one
    fewer when FIRE was pressed, resetting the game again if it ends meanwhile. The no-op count comes
    from the env's ``np_random`` (seeded by ``reset(seed=...)``).
    """

    def __init__(self, env: gym.Env, noop_max: int, fire: bool) -> None:
        super().__init__(env)
        unwrapped: Any = env.unwrapped  # ale_py's AtariEnv
        meanings = unwrapped.get_action_meanings()
        if meanings[0] != "NOOP":
            raise ValueError(f"env: expected action 0 to be NOOP, got {meanings[0]!r}")
        self._noop_max = noop_max
        self._fire_action = meanings.index("FIRE") if fire and "FIRE" in meanings else None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset the game, then FIRE and/or no-op frames as described in the class docstring."""
        obs, info = self.env.reset(seed=seed, options=options)
        pressed = self._fire_action is not None
        if pressed:
            obs, _, _, _, info = self.env.step(self._fire_action)
        noops = int(self.env.unwrapped.np_random.integers(0, max(self._noop_max, 1))) - int(pressed)
        for _ in range(noops):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


class FrameLimit(gym.Wrapper):
    """Truncate after ``max_frames`` steps of a ``frameskip=1`` env, counted from the end of its reset.

    ``truncated`` is reported only when the frame is not also terminal, as ale-py's vector env does.
    """

    def __init__(self, env: gym.Env, max_frames: int) -> None:
        super().__init__(env)
        self._max_frames = max_frames
        self._frames = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset the inner env and the frame count."""
        self._frames = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        """Step one frame; truncate at the cap."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frames += 1
        truncated = (truncated or self._frames >= self._max_frames) and not terminated
        return obs, reward, terminated, truncated, info


class AtariAgentEnv(VectorWrapper):
    """The agent's view of a game-level Atari vector env: episodic life, clipped rewards, score infos.

    ``env`` must autoreset in NEXT_STEP mode and report, per step, raw rewards, ``terminated`` only at
    game over, ``truncated`` at the frame cap, and ``infos["lives"]``. The module docstring gives the
    resulting semantics and info keys. ``seed`` seeds the first ``reset()`` that is given no seed, and
    the action spaces.
    """

    def __init__(
        self,
        env: VectorEnv,
        *,
        episodic_life: bool,
        clip_rewards: bool,
        continue_action: int,
        seed: int | None,
    ) -> None:
        super().__init__(env)
        if env.metadata.get("autoreset_mode") != AutoresetMode.NEXT_STEP:
            raise ValueError(f"env: expected NEXT_STEP autoreset, got {env.metadata.get('autoreset_mode')!r}")
        self.episodic_life = episodic_life
        self.clip_rewards = clip_rewards
        self.continue_action = continue_action
        self._num_actions = num_actions(env)
        self._pending_seed = seed
        n = env.num_envs
        self._tracker = EpisodeTracker(n)
        self._lives = np.zeros(n, dtype=np.int64)
        self._game_resetting = np.zeros(n, dtype=np.bool_)  # inner env autoresets these rows this step
        self._continuing = np.zeros(n, dtype=np.bool_)  # these rows play the continuation action
        if seed is not None:
            self.action_space.seed(seed)
            self.single_action_space.seed(seed)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.uint8], dict[str, Any]]:
        """Reset every env (a new game each); ``seed=s`` seeds env ``i`` with ``s + i``."""
        if options:
            raise ValueError(f"options: expected None (partial resets are not supported), got {options!r}")
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        if seed is not None:
            seed = _check_seed(seed, self.num_envs)
        obs, inner_infos = self.env.reset(seed=seed)
        (obs,), inner_infos = _in_env_order((obs,), inner_infos)
        self._lives = np.asarray(inner_infos["lives"], dtype=np.int64).copy()
        self._game_resetting[:] = False
        self._continuing[:] = False
        infos = self._tracker.reset()
        infos["lives"] = self._lives.copy()
        return obs, infos

    def step(
        self, actions: Any
    ) -> tuple[NDArray[np.uint8], NDArray[np.float32], NDArray[np.bool_], NDArray[np.bool_], dict[str, Any]]:
        """Step every env; see the module docstring for what each output means."""
        actions = _check_actions(actions, self.num_envs, self._num_actions)
        if self._continuing.any():
            actions = np.where(self._continuing, self.continue_action, actions)
        obs, rewards, game_term, game_trunc, inner_infos = self.env.step(actions)
        (obs, rewards, game_term, game_trunc), inner_infos = _in_env_order(
            (obs, rewards, game_term, game_trunc), inner_infos
        )
        lives = np.asarray(inner_infos["lives"], dtype=np.int64)
        game_step = ~self._game_resetting
        raw = np.where(game_step, np.asarray(rewards, dtype=np.float64), 0.0)
        game_term = np.asarray(game_term, dtype=np.bool_) & game_step
        game_over = (game_term | np.asarray(game_trunc, dtype=np.bool_)) & game_step
        if self.episodic_life:
            life_lost = game_step & ~game_term & (lives < self._lives)
        else:
            life_lost = np.zeros_like(game_term)
        terminated = game_term | life_lost
        truncated = game_over & ~terminated
        learn_reward = (np.sign(raw) if self.clip_rewards else raw).astype(np.float32)

        self._game_resetting = game_over
        self._continuing = life_lost & ~game_over
        self._lives = lives.copy()
        infos = self._tracker.step(raw, game_step, game_over)
        infos["lives"] = lives.copy()
        return obs, learn_reward, terminated, truncated, infos


def _in_env_order(arrays: tuple[Any, ...], infos: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Rows sorted by ``infos["env_id"]`` (ale-py's vector env names each row's env; with
    ``batch_size == num_envs`` they already come in order, and this costs one comparison)."""
    env_id = infos.get("env_id")
    if env_id is None or bool((np.diff(env_id) > 0).all()):
        return arrays, infos
    order = np.argsort(env_id, kind="stable")
    return tuple(np.asarray(a)[order] for a in arrays), {k: np.asarray(v)[order] for k, v in infos.items()}


def _check_seed(seed: Any, num_envs: int) -> int:
    if (
        isinstance(seed, bool)
        or not isinstance(seed, (int, np.integer))
        or not (0 <= seed <= _INT32_MAX - num_envs)
    ):
        raise ValueError(f"seed: expected None or an int in [0, {_INT32_MAX - num_envs}], got {seed!r}")
    return int(seed)


def _check_actions(actions: Any, num_envs: int, num_actions: int) -> NDArray[np.int64]:
    array = np.asarray(actions)
    if array.shape != (num_envs,) or array.dtype.kind not in "iu":
        raise ValueError(
            f"actions: expected an integer array of shape ({num_envs},), "
            f"got dtype {array.dtype} shape {array.shape}"
        )
    if array.size and (array.min() < 0 or array.max() >= num_actions):
        raise ValueError(f"actions: expected values in [0, {num_actions}), got {array.tolist()}")
    return array.astype(np.int64, copy=False)


def _make_ale_vector(
    game: str,
    num_envs: int,
    *,
    repeat_action_probability: float,
    noop_max: int,
    frame_skip: int,
    frame_stack: int,
    screen_size: int,
    fire_reset: bool,
    max_episode_frames: int,
    full_action_space: bool,
    num_threads: int,
) -> tuple[VectorEnv, list[str]]:
    env = AtariVectorEnv(
        game,
        num_envs,
        num_threads=num_threads,
        batch_size=0,
        max_num_frames_per_episode=max_episode_frames,  # counted in frames since the reset ended
        repeat_action_probability=repeat_action_probability,
        full_action_space=full_action_space,
        autoreset_mode=AutoresetMode.NEXT_STEP,
        img_height=screen_size,
        img_width=screen_size,
        grayscale=True,
        stack_num=frame_stack,
        frameskip=frame_skip,
        maxpool=True,
        noop_max=noop_max,
        episodic_life=False,
        life_loss_info=False,  # life loss is AtariAgentEnv's job
        reward_clipping=False,  # its clipping would hide the raw score; AtariAgentEnv clips
        use_fire_reset=fire_reset,
    )
    meanings = [action.name for action in env.ale.get_action_set()]
    return env, meanings


def _make_gymnasium_vector(
    env_id: str,
    num_envs: int,
    *,
    repeat_action_probability: float,
    noop_max: int,
    frame_skip: int,
    frame_stack: int,
    screen_size: int,
    fire_reset: bool,
    max_episode_frames: int,
    full_action_space: bool,
    render_mode: str | None,
) -> tuple[VectorEnv, list[str]]:
    def make_one() -> gym.Env:
        env = gym.make(
            env_id,
            frameskip=1,
            repeat_action_probability=repeat_action_probability,
            full_action_space=full_action_space,
            max_num_frames_per_episode=None,
            obs_type="grayscale",
            disable_env_checker=True,
            render_mode=render_mode,
        )
        env = NoopFireReset(env, noop_max=noop_max, fire=fire_reset)
        env = FrameLimit(env, max_episode_frames)
        env = AtariPreprocessing(
            env,
            noop_max=0,
            frame_skip=frame_skip,
            screen_size=screen_size,
            terminal_on_life_loss=False,
            grayscale_obs=True,
            scale_obs=False,
        )
        return FrameStackObservation(env, frame_stack, padding_type="zero")

    env = SyncVectorEnv([make_one for _ in range(num_envs)], autoreset_mode=AutoresetMode.NEXT_STEP)
    first: Any = env.envs[0].unwrapped  # ale_py's AtariEnv
    meanings = list(first.get_action_meanings())
    return env, meanings


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return int(value)


def make_atari_env(
    env_id: str,
    num_envs: int,
    seed: int | None = None,
    *,
    backend: Backend = "ale_vector",
    repeat_action_probability: float = 0.0,
    noop_max: int = 30,
    frame_skip: int = FRAME_SKIP,
    frame_stack: int = 4,
    screen_size: int = 84,
    episodic_life: bool = True,
    clip_rewards: bool = True,
    fire_reset: bool = True,
    max_episode_frames: int = 108_000,
    full_action_space: bool = False,
    num_threads: int = 0,
    render_mode: str | None = None,
) -> AtariAgentEnv:
    """Build ``num_envs`` preprocessed copies of ``ALE/<Game>-v5`` as one NEXT_STEP-autoreset vector env.

    Args:
        env_id: ``"ALE/<Game>-v5"``.
        num_envs: number of envs (rows of every output).
        seed: seeds the first ``reset()`` without a seed (env ``i`` gets ``seed + i``) and the
            action spaces; ``None``: unseeded.
        backend: ``"ale_vector"`` (C++, threaded) or ``"gymnasium"`` (Python wrappers); same semantics.
        repeat_action_probability: sticky-action probability (0.25 in the ALE v5 protocol).
        noop_max: reset no-ops are ``U{0..noop_max-1}`` frames (one fewer after a reset FIRE).
        frame_skip: emulator frames per agent step (max-pooled over the last two).
        frame_stack: frames per observation, oldest first.
        screen_size: observation frames are ``screen_size`` x ``screen_size`` grayscale.
        episodic_life: a life loss reports ``terminated`` (the game goes on).
        clip_rewards: rewards are ``sign(raw)``; the raw score stays in the infos.
        fire_reset: press FIRE at reset and after a life loss in games that have FIRE.
        max_episode_frames: truncate a game after this many emulator frames.
        full_action_space: all 18 actions instead of the game's minimal set.
        num_threads: C++ worker threads of the ``"ale_vector"`` backend (0: ale-py chooses).
        render_mode: ``"rgb_array"`` makes ``env.render()`` return each env's RGB screen
            (``"gymnasium"`` backend only).

    Raises ValueError naming the argument for an unknown id, backend or out-of-range option.
    """
    game = atari_rom(env_id)
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if not (isinstance(repeat_action_probability, (int, float)) and 0.0 <= repeat_action_probability <= 1.0):
        raise ValueError(
            f"repeat_action_probability: expected a float in [0, 1], got {repeat_action_probability!r}"
        )
    num_envs = _check_int("num_envs", num_envs, 1)
    if seed is not None:
        seed = _check_seed(seed, num_envs)
    common: dict[str, Any] = dict(
        repeat_action_probability=float(repeat_action_probability),
        noop_max=_check_int("noop_max", noop_max, 0),
        frame_skip=_check_int("frame_skip", frame_skip, 1),
        frame_stack=_check_int("frame_stack", frame_stack, 1),
        screen_size=_check_int("screen_size", screen_size, 1),
        fire_reset=bool(fire_reset),
        max_episode_frames=_check_int("max_episode_frames", max_episode_frames, 1),
        full_action_space=bool(full_action_space),
    )
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode: expected None or 'rgb_array', got {render_mode!r}")
    if backend == "ale_vector":
        if render_mode is not None:
            raise ValueError("render_mode: the 'ale_vector' backend does not render; use backend='gymnasium'")
        threads = _check_int("num_threads", num_threads, 0)
        env, meanings = _make_ale_vector(game, num_envs, num_threads=threads, **common)
    else:
        env, meanings = _make_gymnasium_vector(env_id, num_envs, render_mode=render_mode, **common)
    continue_action = meanings.index("FIRE") if fire_reset and "FIRE" in meanings else 0
    return AtariAgentEnv(
        env,
        episodic_life=bool(episodic_life),
        clip_rewards=bool(clip_rewards),
        continue_action=continue_action,
        seed=seed,
    )
