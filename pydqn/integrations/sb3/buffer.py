"""`ReplayBuffer`: SB3's ``ReplayBuffer`` interface over pydqn's frame-deduplicating buffer."""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common import buffers
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from pydqn._extension import load_extension
from pydqn.agent.placement import BatchMover, replay_device
from pydqn.device import resolve_device
from pydqn.integrations.sb3.episodes import AutoresetRows, episode_ends, with_final_obs
from pydqn.integrations.sb3.frames import (
    UNDECIDED_BYTES,
    FrameLayout,
    FrameStackDetector,
    axis_name,
    stack_count,
)
from pydqn.replay import Batch, checks
from pydqn.replay import ReplayBuffer as PydqnReplayBuffer


class Rows(NamedTuple):
    """One ``add`` call's rows, in SB3's observation shape, for the env streams ``env_ids`` (None:
    all, in order)."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    env_ids: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self if a is not None)

    def copy(self) -> Rows:
        obs, action, reward, next_obs, terminated, truncated = (np.array(a) for a in self._row_fields())
        env_ids = None if self.env_ids is None else self.env_ids.copy()
        return Rows(obs, action, reward, next_obs, terminated, truncated, env_ids)

    def take(self, env_ids: np.ndarray) -> Rows:
        """The rows of ``env_ids`` only (these are all rows' positions: every env in order)."""
        obs, action, reward, next_obs, terminated, truncated = (a[env_ids] for a in self._row_fields())
        return Rows(obs, action, reward, next_obs, terminated, truncated, env_ids)

    def _row_fields(self) -> tuple[np.ndarray, ...]:
        return self.obs, self.action, self.reward, self.next_obs, self.terminated, self.truncated

    def envs(self) -> np.ndarray:
        return np.arange(len(self.obs)) if self.env_ids is None else self.env_ids


class ReplayBuffer(buffers.ReplayBuffer):
    """A drop-in for SB3's ``ReplayBuffer`` that stores each frame once, in pydqn's C++ buffer.

    ``DQN(..., replay_buffer_class=ReplayBuffer)`` (SB3) or ``rb = ReplayBuffer(...)`` (CleanRL)
    is the whole change. Memory: SB3 keeps two stacked observations per transition (one with
    ``optimize_memory_usage``); this buffer keeps the one new frame a step adds, about 7.1 KB for
    an 84x84 Atari transition against SB3's 56.4 KB (28.2 KB).

    Args (SB3's): ``buffer_size`` transitions in all (divided among ``n_envs`` streams, as SB3
    does); ``observation_space`` a Box or Discrete space; ``action_space`` Discrete;
    ``device`` where sampled batches go (``"auto"``: CUDA when available; with CUDA kernels
    built, the buffer lives there and samples there). ``optimize_memory_usage`` is accepted and
    changes nothing: storage is always compact and truncations keep their real next obs.
    ``handle_timeout_termination`` (True) samples truncated rows as not done (bootstrapped);
    False samples SB3's ``done`` as it came.

    Args (pydqn's, through ``replay_buffer_kwargs``):
        frame_stack: frames each observation stacks; None (default) detects it from the first
            transitions for image observations (others are stored whole unless declared; see
            `pydqn.integrations.sb3.frames`), 1 stores observations whole.
            A declared or detected stacking that a later row contradicts is a ValueError naming
            ``frame_stack``: nothing wrong is ever stored.
        stack_axis: ``"first"`` or ``"last"``: the axis the frames are concatenated along
            (None: either, as the rows show).
        n_steps: n-step returns (samples carry ``discounts`` = gamma^m, as SB3 2.7's n-step
            buffer's); a transition is sampled once its window is complete.
        gamma: the n-step discount.
        seed: the sampling generator's seed (None: drawn from numpy's global generator, which
            SB3 seeds with the model's seed).

    ``add`` takes SB3's rows and CleanRL's (see `pydqn.integrations.sb3.episodes`), and drops
    gymnasium NEXT_STEP autoreset rows. An env whose ``obs`` does not continue its previous
    ``next_obs`` (the env was reset, e.g. by a second ``learn()``) starts a new episode. ``size``,
    ``pos`` and ``full`` count ``add`` calls, as SB3's do.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        *,
        frame_stack: int | None = None,
        stack_axis: str | None = None,
        n_steps: int = 1,
        gamma: float = 0.99,
        seed: int | None = None,
    ) -> None:
        if not isinstance(observation_space, spaces.Box | spaces.Discrete):
            raise TypeError(
                "observation_space: expected a Box or Discrete space (pydqn stores arrays; SB3 uses "
                f"DictReplayBuffer for Dict spaces), got {observation_space}"
            )
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"action_space: expected a Discrete space (DQN's), got {action_space}")
        # SB3's ReplayBuffer.__init__ allocates its full observation arrays; only the base class's
        # bookkeeping (spaces, shapes, n_envs, device, pos, full) is wanted.
        buffers.BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs)
        self.buffer_size = max(buffer_size // n_envs, 1)
        self.optimize_memory_usage = optimize_memory_usage
        self.handle_timeout_termination = handle_timeout_termination
        self.n_steps, self.gamma = n_steps, gamma
        self.seed = int(np.random.randint(0, 2**63 - 1, dtype=np.int64)) if seed is None else seed
        self._obs_dtype = np.dtype(observation_space.dtype)
        self._discrete_obs = isinstance(observation_space, spaces.Discrete)
        self._action_range = (int(action_space.start), int(action_space.start + action_space.n))
        self._detector = FrameStackDetector(
            self.obs_shape,
            frame_stack=stack_count(frame_stack),
            stack_axis=axis_name(stack_axis),
            default_axis=_stack_axis_of(observation_space),
            detect=is_image_space(observation_space),
        )
        self._core: PydqnReplayBuffer | None = None
        self._direct = False
        self._pending: list[Rows | None] = []  # rows (or episode ends) held until the layout is known
        self._autoreset = AutoresetRows()
        if self._detector.layout is not None:
            self._open(self._detector.layout)
        else:
            self._check_core_settings()

    # ---- the SB3 interface --------------------------------------------------------------------

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]] | dict[str, Any],
    ) -> None:
        """Stores one transition per env, SB3's way or CleanRL's (see the class docs)."""
        n = self.n_envs
        if isinstance(infos, dict):
            next_obs = with_final_obs(next_obs, infos)
        terminated, truncated, awaiting_reset = episode_ends(
            done, infos, n, handle_timeout_termination=self.handle_timeout_termination
        )
        rows = Rows(
            obs, _actions(action, n, self._action_range), reward, next_obs, terminated, truncated, None
        )
        dropped = self._autoreset.find(obs, reward, terminated, truncated)
        if dropped is None:
            self._store(rows)
        elif not dropped.all():
            self._store(self._checked(rows).take(np.flatnonzero(~dropped)))
        self._autoreset.record(next_obs, awaiting_reset, dropped)
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """``batch_size`` transitions drawn uniformly (with replacement) by the buffer's own
        generator, as SB3's ``ReplayBufferSamples`` on ``device``; ``env`` (VecNormalize)
        normalizes observations and rewards as SB3 does."""
        return self._samples(self._mover(self._opened().sample(batch_size)), env)

    def reset(self) -> None:
        """Empties the buffer (SB3's ``reset``); the frame layout found stays."""
        super().reset()
        self._pending.clear()
        self._autoreset.forget()
        if self._core is not None:
            self._core = self._new_core(self._core_layout)

    def end_episodes(self) -> None:
        """Ends every env's open episode without a row: its transitions stay stored, n-step
        windows close there (bootstrapped), and each env's next row starts a new episode."""
        self._autoreset.forget()
        if self._core is None:
            self._pending.append(None)
        else:
            self._core.end_episodes()

    @property
    def dones(self) -> _EpisodeCut:  # type: ignore[override]  # SB3's is an array it writes to
        """Only for SB3's ``learn()``, which cuts the last trajectory of a compact buffer with
        ``buffer.dones[pos] = True``; here that ends every open episode (`end_episodes`)."""
        return _EpisodeCut(self)

    @property
    def device(self) -> torch.device:
        return self._device

    @device.setter
    def device(self, device: torch.device | str) -> None:
        # SB3's load_replay_buffer sets the loading model's device: the buffer follows it there.
        resolved = resolve_device(device)
        core: PydqnReplayBuffer | None = getattr(self, "_core", None)
        if core is not None and _core_device(resolved) != core.device:
            moved = self._new_core(self._core_layout, _core_device(resolved))
            moved.load_state_dict(core.state_dict())
            self._core = moved
        self._device, self._mover = resolved, BatchMover(resolved)

    @property
    def nbytes(self) -> int:
        """Every byte the buffer holds: pydqn's buffer, and rows still waiting for the layout."""
        held = sum(rows.nbytes for rows in self._pending if rows is not None) + self._autoreset.nbytes
        return held + (self._core.nbytes if self._core is not None else 0)

    @property
    def pydqn_buffer(self) -> PydqnReplayBuffer:
        """The `pydqn.ReplayBuffer` underneath, in `frame_layout`'s ``buffer_shape`` (its ``get``,
        ``state_dict``, ``nbytes``); asking for it settles a layout still undecided."""
        return self._opened()

    @property
    def frame_layout(self) -> FrameLayout | None:
        """How observations stack frames, once known (None while the first rows leave it open)."""
        return self._detector.layout

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        raise NotImplementedError(
            "pydqn's ReplayBuffer draws batches with its own generator and keeps no per-slot arrays "
            "to index: call sample()"
        )

    def __getstate__(self) -> dict[str, Any]:
        # The compact state (every frame once, about nbytes) instead of arrays of stacks.
        state = self.__dict__.copy()
        core = state.pop("_core")
        del state["_mover"]
        # numpy arrays pickle in one copy (a tensor's storage is torch.save'd into bytes first).
        state["_core_state"] = (
            None if core is None else {k: _as_array(v) for k, v in core.state_dict().items()}
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        core_state = state.pop("_core_state")
        self.__dict__.update(state)
        if self._device.type == "cuda" and not torch.cuda.is_available():
            # Saved on a GPU, loaded where there is none: SB3's load_replay_buffer then sets the
            # model's device, and the buffer follows it.
            self._device = torch.device("cpu")
        self._mover = BatchMover(self._device)
        self._core = None
        if core_state is not None:
            self._core = self._new_core(self._core_layout)
            self._core.load_state_dict({k: _as_tensor(v) for k, v in core_state.items()})

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(buffer_size={self.buffer_size}, n_envs={self.n_envs}, "
            f"obs_shape={self.obs_shape}, {self._layout_text()}, n_steps={self.n_steps}, "
            f"size={self.size()}, nbytes={self.nbytes}, device={str(self.device)!r})"
        )

    # ---- storing ------------------------------------------------------------------------------

    def _store(self, rows: Rows) -> None:
        if self._direct and self._core is not None:
            # add() runs once per env step: the rows go in as they came, and pydqn's buffer checks
            # them (refusing, it changes nothing); only then are they checked and mended here.
            try:
                self._core.add(*rows)
                return
            except (ValueError, TypeError):
                pass
        rows = self._checked(rows)
        if self._core is not None:
            self._add(rows)
            return
        # The detector learns from the rows only once they are kept (a refused call changes nothing).
        detector = copy.deepcopy(self._detector)
        layout = detector.observe(rows.obs, rows.next_obs)
        held = rows.nbytes + self.nbytes
        if layout is None and held >= UNDECIDED_BYTES:
            layout = detector.decide_now()
        # SB3 reuses its observation arrays: held rows are copies.
        self._pending.append(rows.copy())
        try:
            if layout is not None:
                self._open(layout)
        except BaseException:
            self._pending.pop()
            raise
        self._detector = detector

    def _checked(self, rows: Rows) -> Rows:
        """The rows checked as SB3 gives them (errors name add()'s arguments) and converted to the
        buffer's dtypes: what pydqn's buffer would refuse, it refuses first."""
        reward = _per_env("reward", rows.reward, len(rows.terminated))
        if reward.dtype.kind not in "biuf":
            raise TypeError(f"reward: expected real numbers, got dtype {reward.dtype}")
        reward = reward.astype(np.float32)
        if not np.isfinite(reward).all():
            raise ValueError(f"reward: expected finite float32 values, got {reward.tolist()}")
        count = len(rows.terminated)
        obs, next_obs = (
            self._obs_rows("obs", rows.obs, count),
            self._obs_rows("next_obs", rows.next_obs, count),
        )
        return rows._replace(obs=obs, reward=reward, next_obs=next_obs)

    def _opened(self) -> PydqnReplayBuffer:
        if self._core is None:
            detector = copy.deepcopy(self._detector)
            self._open(detector.decide_now())
            self._detector = detector
        assert self._core is not None
        return self._core

    def _open(self, layout: FrameLayout) -> None:
        """Builds pydqn's buffer for ``layout`` and stores the rows held for it; on failure (too
        many frames for its ids, no device memory) nothing changes."""
        core = self._new_core(layout)
        for rows in self._pending:
            if rows is None:
                core.end_episodes()
            else:
                self._add_to(core, layout, rows)
        self._core, self._core_layout, self._pending = core, layout, []
        # Whether add()'s rows can go to pydqn's buffer as they come (SB3 hands a Discrete space's
        # observations over as (n_envs,), which the buffer stores as (n_envs, 1)).
        self._direct = not layout.reshapes and not self._discrete_obs

    def _add(self, rows: Rows) -> None:
        assert self._core is not None
        self._add_to(self._core, self._core_layout, rows)

    @staticmethod
    def _add_to(core: PydqnReplayBuffer, layout: FrameLayout, rows: Rows) -> None:
        """Adds checked rows; an env whose obs does not continue its episode starts a new one."""
        obs, next_obs = layout.to_buffer(rows.obs), layout.to_buffer(rows.next_obs)
        args = (obs, rows.action, rows.reward, next_obs, rows.terminated, rows.truncated, rows.env_ids)
        try:
            core.add(*args)
        except ValueError as refused:
            # Every argument was checked, so the refusal is about continuity: a row that breaks the
            # frame stack, or an env that was reset without a final row.
            moved_on = layout.shifts(rows.obs, rows.next_obs)
            envs = rows.envs()
            if not moved_on.all():
                env = int(envs[np.argmin(moved_on)])
                raise ValueError(
                    f"frame_stack: env {env}'s next_obs is not its obs moved on by one frame, as "
                    f"{layout.describe()} requires (declared or found from the first transitions); "
                    "declare replay_buffer_kwargs frame_stack (1 for none) to match the env"
                ) from refused
            stale = envs[~core.continues(obs, rows.env_ids).numpy()]
            if len(stale) == 0 or core.end_episodes(stale) == 0:
                raise
            core.add(*args)

    # ---- building and reading -----------------------------------------------------------------

    def _new_core(self, layout: FrameLayout, device: torch.device | None = None) -> PydqnReplayBuffer:
        return PydqnReplayBuffer(
            capacity=self.buffer_size * self.n_envs,
            obs_shape=layout.buffer_shape,
            obs_dtype=_torch_dtype(self._obs_dtype),
            frame_stack=layout.frames,
            num_envs=self.n_envs,
            device=_core_device(self.device) if device is None else device,
            seed=self.seed,
            n_step=self.n_steps,
            gamma=self.gamma,
            **self._core_extras(),
        )

    def _check_core_settings(self) -> None:
        """Refuses bad settings at construction, while the layout is still to be found."""
        checks.check_buffer_args(
            self.buffer_size * self.n_envs, self.obs_shape, _torch_dtype(self._obs_dtype), 1, self.n_envs,
            "cpu", self.seed, self.n_steps, self.gamma, **self._core_extras(),
        )  # fmt: skip

    def _core_extras(self) -> dict[str, Any]:
        return {}

    def _samples(self, batch: Batch, env: VecNormalize | None) -> ReplayBufferSamples:
        """A batch, on ``device`` already, in SB3's shapes."""
        layout = self._core_layout
        obs, next_obs = layout.from_buffer(batch.obs), layout.from_buffer(batch.next_obs)
        reward = batch.reward.unsqueeze(1)
        if env is not None:
            obs, next_obs, reward = self._normalized(env, obs, next_obs, reward)
        return ReplayBufferSamples(
            observations=obs,
            actions=batch.action.unsqueeze(1),
            next_observations=next_obs,
            dones=batch.terminated.to(torch.float32).unsqueeze(1),
            rewards=reward,
            discounts=batch.discount.unsqueeze(1) if self.n_steps > 1 else None,
        )

    def _normalized(
        self, env: VecNormalize, obs: torch.Tensor, next_obs: torch.Tensor, reward: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.n_steps > 1 and getattr(env, "norm_reward", False):
            raise ValueError(
                "env: VecNormalize(norm_reward=True) clips each step's reward, but with n_steps > 1 "
                "this buffer stores n-step returns; normalize rewards with n_steps=1, or set "
                "norm_reward=False"
            )

        def normalized_obs(t: torch.Tensor) -> torch.Tensor:
            return torch.as_tensor(self._normalize_obs(t.cpu().numpy(), env), device=self.device)

        rewards = self._normalize_reward(reward.cpu().numpy(), env)
        return normalized_obs(obs), normalized_obs(next_obs), torch.as_tensor(rewards, device=self.device)

    def _obs_rows(self, name: str, value: Any, count: int) -> np.ndarray:
        array = np.asarray(value)
        want = (count, *self.obs_shape)
        if self._discrete_obs:
            array = array.reshape(want)  # as SB3 does
        if array.shape != want:
            raise ValueError(f"{name}: expected shape {want} (n_envs, *obs_shape), got {array.shape}")
        if array.dtype != self._obs_dtype:
            if not np.can_cast(array.dtype, self._obs_dtype, casting="safe"):
                raise TypeError(
                    f"{name}: expected dtype {self._obs_dtype} (the observation space's), got "
                    f"{array.dtype}, which does not convert to it exactly"
                )
            array = array.astype(self._obs_dtype)
        return array

    def _layout_text(self) -> str:
        layout = self._detector.layout
        return "frame stacking not known yet" if layout is None else layout.describe()


class _EpisodeCut:
    """``buffer.dones``, which SB3 only writes to, to end a compact buffer's last trajectory."""

    def __init__(self, buffer: ReplayBuffer) -> None:
        self._buffer = buffer

    def __setitem__(self, index: Any, value: Any) -> None:
        if np.any(value):
            self._buffer.end_episodes()


def _per_env(name: str, value: Any, n_envs: int) -> np.ndarray:
    array = np.asarray(value)
    if array.size != n_envs:
        raise ValueError(f"{name}: expected {n_envs} values, one per env, got shape {array.shape}")
    return array.reshape(n_envs)


def _actions(value: Any, n_envs: int, valid: tuple[int, int]) -> np.ndarray:
    """Integer actions of the Discrete space whose actions are ``valid`` = [start, end)."""
    array = np.asarray(value)
    if array.shape != (n_envs,):
        array = _per_env("action", array, n_envs)
    if array.dtype.kind not in "iu":
        raise TypeError(f"action: expected integer actions of a Discrete space, got dtype {array.dtype}")
    low, high = (int(array[0]),) * 2 if n_envs == 1 else (int(array.min()), int(array.max()))
    if low < valid[0] or high >= valid[1]:
        raise ValueError(f"action: expected actions in [{valid[0]}, {valid[1]}), got {array.tolist()}")
    return array


def _core_device(device: torch.device) -> torch.device:
    """Where pydqn's buffer lives for batches wanted on ``device``: in GPU memory when pydqn has its
    CUDA kernels, else on the host (batches then reach the GPU through pinned memory)."""
    return replay_device(device, cpp_buffer=load_extension().WITH_CUDA, shared_by_threads=False)


def _stack_axis_of(space: spaces.Space) -> int:
    """The axis SB3's VecFrameStack stacks along: the channels of an image, else the last."""
    shape = space.shape or (1,)
    if len(shape) == 3 and np.argmin(shape) == 0:
        return 0
    return len(shape) - 1


def _as_array(value: Any) -> Any:
    return value.numpy() if isinstance(value, torch.Tensor) else value


def _as_tensor(value: Any) -> Any:
    return torch.from_numpy(value) if isinstance(value, np.ndarray) else value


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype
