"""`ReplayBuffer`: the frame-deduplicating, thread-safe replay buffer backed by `pydqn._C`."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from pydqn import _args
from pydqn._extension import load_extension
from pydqn.batch import Batch

_C = load_extension()


class ReplayBuffer:
    """A circular replay buffer that stores every observation frame once.

    Args:
        capacity: transitions kept; when full, each new transition overwrites the oldest one
            (FIFO over all env streams, in the order ``add`` claimed slots).
        obs_shape: shape of one observation as the agent sees it, e.g. ``(4, 84, 84)`` or ``(4,)``.
            With ``frame_stack=k > 1`` axis 0 holds the k most recent frames, oldest first.
        obs_dtype: dtype of observations; inputs must have exactly this dtype.
        frame_stack: frames per observation. Consecutive observations of an env stream share
            k-1 frames, and the buffer keeps only the new ones.
        num_envs: number of env streams that ``add`` interleaves.
        device: ``"cpu"``.
        seed: seed of the buffer's own sampling generator (``None``: from the OS).
        n_step: sample n-step transitions (see `Batch`); a transition is sampled once its window
            is complete, n transitions later or at its episode's end.
        gamma: the discount of n-step returns (``Batch.discount`` is gamma^m).

    ``add``, ``sample`` and ``get`` release the GIL while they copy. Threads may ``add`` at the same
    time for disjoint ``env_ids`` while other threads ``sample``; no sample returns a transition
    mixed from two writes.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        obs_dtype: torch.dtype = torch.uint8,
        frame_stack: int = 1,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        n_step: int = 1,
        gamma: float = 0.99,
    ) -> None:
        args = _args.check_buffer_args(capacity, obs_shape, obs_dtype, frame_stack, num_envs,
                                       device, seed, n_step, gamma)
        self.obs_shape, self.obs_dtype, self.device = args.obs_shape, args.obs_dtype, args.device
        self.frame_stack, self.num_envs = args.frame_stack, args.num_envs
        self.n_step, self.gamma = args.n_step, args.gamma
        self._impl = _C.ReplayBuffer(args.capacity, list(args.obs_shape), args.obs_dtype,
                                     args.frame_stack, args.num_envs, args.seed, args.n_step,
                                     args.gamma)
        if type(self).add is ReplayBuffer.add:
            # add() runs once per environment step: calls go straight to the extension's method,
            # whose arguments and behaviour are those of the method below, without the ~0.9 us
            # Python frame of a call through it. Subclasses that override add() keep theirs.
            self.add = self._impl.add

    def add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
        env_ids: Sequence[int] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Store one transition per env row and return the int64 slots written, shape ``(n,)``.

        ``obs`` and ``next_obs`` are ``(n, *obs_shape)``; ``action`` (integer), ``reward`` (real),
        ``terminated`` and ``truncated`` (bool) are ``(n,)``. Rows belong to ``env_ids`` (default:
        all ``num_envs`` streams in order). Numpy arrays or tensors on any device are accepted.

        Raises ValueError if an episode does not continue from its previous ``next_obs`` or
        ``next_obs`` is not ``obs`` shifted by one frame (naming the env and episode step), and
        ValueError/TypeError for any other malformed argument; a rejected call stores nothing.
        """
        # Instances call self._impl.add directly (see __init__); this runs for subclasses' super().
        # The extension reads numpy arrays and CPU tensors in place (anything else is converted
        # there), so this hot path does no Python-side work.
        return self._impl.add(obs, action, reward, next_obs, terminated, truncated, env_ids)

    def sample(self, batch_size: int, out: Batch | None = None) -> Batch:
        """Draw ``batch_size`` transitions uniformly, with replacement, from those stored.

        With ``out`` (a Batch of contiguous CPU tensors of the right shapes and dtypes) the batch
        is written in place and ``out`` is returned: no allocation on the sampling path.
        """
        batch_size = _args.check_int("batch_size", batch_size, minimum=1)
        if out is None:
            return Batch(*self._impl.sample(batch_size))
        if not isinstance(out, Batch):
            raise TypeError(f"out: expected a pydqn.Batch, got {type(out).__name__}")
        if out.indices.shape != (batch_size,):
            raise ValueError(f"out: expected a Batch of {batch_size} rows, got {tuple(out.indices.shape)}")
        self._impl.sample_into(list(out))
        return out

    def get(self, indices: Sequence[int] | torch.Tensor) -> Batch:
        """Read the transitions in the given slots (as returned by ``add``)."""
        return Batch(*self._impl.get(_args.as_index_tensor("indices", indices)))

    def state_dict(self) -> dict[str, Any]:
        """The stored transitions and the sampling generator's position, compactly (every frame
        once, about ``nbytes``): save it with ``torch.save`` and restore it into a new buffer with
        `load_state_dict`. Holds off concurrent ``add`` calls while it copies."""
        return {"settings": self._settings(), **self._impl.save_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict` into this buffer, which must be new (nothing added yet) and have
        the same capacity, obs_shape, obs_dtype, frame_stack and num_envs.

        Afterwards ``len``, every slot's ``get``, the slots later ``add`` calls return, and the
        sequence of ``sample`` batches are the saved buffer's. Env streams start afresh: each
        stream's next ``add`` begins a new episode (an unfinished saved episode stays stored; its
        last transition bootstraps like any other non-terminal one).
        """
        if not isinstance(state, dict) or "settings" not in state:
            raise TypeError(f"state: expected a dict from ReplayBuffer.state_dict(), got {type(state).__name__}")
        saved, own = state["settings"], self._settings()
        for name, value in own.items():
            if saved.get(name) != value:
                raise ValueError(f"state: saved from a buffer with {name}={saved.get(name)!r}, "
                                 f"this one has {name}={value!r}")
        missing = [name for name in _C.REPLAY_STATE_KEYS if name not in state]
        if missing:
            raise ValueError(f"state: missing {missing}; expected a dict from ReplayBuffer.state_dict()")
        self._impl.load_state({name: state[name] for name in _C.REPLAY_STATE_KEYS})

    def _settings(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "obs_shape": list(self.obs_shape),
                "obs_dtype": str(self.obs_dtype), "frame_stack": self.frame_stack,
                "num_envs": self.num_envs, "n_step": self.n_step, "gamma": self.gamma}

    def __len__(self) -> int:
        return len(self._impl)

    @property
    def capacity(self) -> int:
        return self._impl.capacity

    @property
    def nbytes(self) -> int:
        """Every byte the buffer has allocated: frames, transition records and bookkeeping, plus
        the (at most two) observation blocks that ``sample`` keeps for reuse."""
        return self._impl.nbytes

    def __repr__(self) -> str:
        return (
            f"ReplayBuffer(capacity={self.capacity}, obs_shape={self.obs_shape}, "
            f"obs_dtype={self.obs_dtype}, frame_stack={self.frame_stack}, "
            f"num_envs={self.num_envs}, n_step={self.n_step}, len={len(self)}, nbytes={self.nbytes})"
        )
