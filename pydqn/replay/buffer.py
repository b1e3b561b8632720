"""`ReplayBuffer`: the frame-deduplicating, thread-safe replay buffer backed by `pydqn._C`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from pydqn._extension import load_extension
from pydqn.replay import checks, saved_state
from pydqn.replay.batch import Batch
from pydqn.replay.protocol import IntsLike, RealsLike

if TYPE_CHECKING:
    from pydqn import _C  # its stub, _C.pyi
else:
    _C = load_extension()  # checks the torch version it was built for, then imports it


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
        device: where sampled batches are built. ``"cpu"``, or ``"cuda"`` (``"cuda:i"``): the
            buffer keeps its frames in that GPU's memory (only there) with a copy of its
            transitions, and ``sample`` and ``get`` return CUDA tensors gathered there by one
            kernel (see `sample`); the host keeps the bookkeeping.
        seed: seed of the buffer's own sampling generator (``None``: from the OS).
        n_step: sample n-step transitions (see `Batch`); a transition is sampled once its window
            is complete, n transitions later or at its episode's end.
        gamma: the discount of n-step returns (``Batch.discount`` is gamma^m).
        prioritized: sample transition i with probability p_i^alpha / sum_j p_j^alpha
            (proportional prioritized replay, Schaul et al. 2016) instead of uniformly; see
            `sample` and `update_priorities`.
        alpha: how much priorities count (0: uniform).
        sampler: ``"host"`` (the default on the CPU) copies batches out of the host store;
            ``"kernel"`` (the default, and the only one, on CUDA) keeps a device copy of the
            frames and transitions and samples with the device's kernels. ``device="cpu",
            sampler="kernel"`` runs the CUDA path's CPU twin, which draws the same batches.

    ``add``, ``sample`` and ``get`` release the GIL while they copy. Threads may ``add`` at the same
    time for disjoint ``env_ids`` while other threads ``sample``; no sample returns a transition
    mixed from two writes. A ``"kernel"`` sampler takes one call at a time: overlapping calls raise
    RuntimeError and change nothing. Its device work goes on the current CUDA stream, and a call on
    another stream than the previous call's waits for that call's work first; CUDA graphs that
    capture ``sample`` must be replayed on the stream the adds use (torch's current one).
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
        prioritized: bool = False,
        alpha: float = 0.6,
        sampler: str | None = None,
    ) -> None:
        args = checks.check_buffer_args(
            capacity,
            obs_shape,
            obs_dtype,
            frame_stack,
            num_envs,
            device,
            seed,
            n_step,
            gamma,
            prioritized,
            alpha,
            cuda_resident=True,
        )
        self.sampler = _check_sampler(sampler, args.device)
        if args.device.type == "cuda" and not _C.WITH_CUDA:
            raise ValueError(
                f"device: {args.device} asked for, but pydqn was built without CUDA "
                "kernels (against a CPU torch, or without nvcc); reinstall it with "
                "`pip install --no-build-isolation .` in an environment with a CUDA torch"
            )
        self.obs_shape, self.obs_dtype, self.device = args.obs_shape, args.obs_dtype, args.device
        self.frame_stack, self.num_envs = args.frame_stack, args.num_envs
        self.n_step, self.gamma = args.n_step, args.gamma
        self.prioritized, self.alpha = args.prioritized, args.alpha
        self._impl = _C.ReplayBuffer(
            args.capacity,
            list(args.obs_shape),
            args.obs_dtype,
            args.frame_stack,
            args.num_envs,
            args.seed,
            args.n_step,
            args.gamma,
            args.prioritized,
            args.alpha,
            args.device if self.sampler == "kernel" else None,
        )
        if type(self).add is ReplayBuffer.add:
            # add() runs once per environment step: calls go straight to the extension's method,
            # whose arguments and behaviour are those of the method below, without the ~0.9 us
            # Python frame of a call through it. Subclasses that override add() keep theirs.
            self.add = self._impl.add  # type: ignore[method-assign]

    def add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
        env_ids: IntsLike | None = None,
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

    def end_episodes(self, env_ids: IntsLike | None = None) -> int:
        """End the open episodes of ``env_ids`` (default: all ``num_envs`` streams) without adding
        a transition, and return how many were open.

        For an episode that stops without a final row: an env the caller reset mid-episode, an
        actor that died, a training run that starts again from a fresh reset. The episode's stored
        transitions stay as they are. With ``n_step > 1`` its open n-step windows complete now,
        cut at its last stored transition as an episode end cuts them, but with that transition's
        flags (neither terminated nor truncated): they bootstrap from its ``next_obs`` with
        discount gamma^m, m < n, and become sampleable (at the largest priority given so far, in
        a prioritized buffer). The stream's next ``add`` begins a new episode, from any ``obs``.
        Streams without an open episode (nothing added since construction, a load or the last
        end; the last row terminated or truncated) are left alone.

        ``env_ids`` is checked as ``add`` checks it (ValueError/TypeError naming it; a refused call
        changes nothing). Like ``add`` it holds its streams: a concurrent ``add`` to one of them
        is refused with ValueError, and calls for disjoint streams and ``sample`` run alongside.
        """
        return self._impl.end_episodes(env_ids)

    def continues(self, obs: Any, env_ids: IntsLike | None = None) -> torch.Tensor:
        """Whether each row of ``obs`` continues its stream's open episode: a bool tensor of shape
        ``(n,)``, True where the stream of ``env_ids`` (default: all ``num_envs`` in order) has an
        open episode whose last ``next_obs`` equals the row bit for bit.

        ``obs`` is ``(n, *obs_shape)`` of the buffer's dtype, checked (and accepted in any form)
        as ``add`` checks it. Where the stream has an open episode, a False row is one that
        ``add`` would refuse as a discontinuity: call `end_episodes` for those streams first.
        Changes nothing; holds its streams while it compares, as ``add`` does.
        """
        return self._impl.continues(obs, env_ids)

    def sample(self, batch_size: int, out: Batch | None = None, *, beta: float | None = None) -> Batch:
        """Draw ``batch_size`` transitions, with replacement, from those stored: uniformly, or
        for a prioritized buffer with probability P(i) = p_i^alpha / sum_j p_j^alpha.

        Prioritized draws are stratified (row r of B falls in the r-th of B equal slices of the
        priority mass) and ``weights`` are the importance-sampling weights (N P(i))^-beta divided
        by the largest weight any stored transition has, i.e. (p_i / p_min)^(-alpha beta): at
        most 1, and independent of which other transitions the batch holds. ``beta`` (default
        0.4) is required in [0, 1] for a prioritized buffer and refused by a uniform one, whose
        weights are 1.

        With ``out`` (a Batch of contiguous tensors on ``device`` of the right shapes and dtypes)
        the batch is written in place and ``out`` is returned: no allocation on the sampling path.

        On CUDA the slots are drawn on the device (by a counter-based generator whose position
        lives in device memory) and one kernel gathers the stacked ``obs``/``next_obs`` and every
        other field: the call queues work on the current stream and never waits for the GPU, so
        ``sample(B, out=batch)`` can be captured in a CUDA graph, whose replays sample afresh
        from what the buffer then holds. A prioritized buffer on CUDA draws the slots and
        weights on the host, from its trees, and copies them without waiting; that sample cannot
        be captured. With the same seed and ``add`` calls, every sampler draws the same batches.
        """
        batch_size = checks.check_int("batch_size", batch_size, minimum=1, maximum=2**63 - 1)
        beta = checks.check_beta(self.prioritized, beta)
        if out is None:
            return Batch(*self._impl.sample(batch_size, beta))
        if not isinstance(out, Batch):
            raise TypeError(f"out: expected a pydqn.Batch, got {type(out).__name__}")
        if out.indices.shape != (batch_size,):
            raise ValueError(f"out: expected a Batch of {batch_size} rows, got {tuple(out.indices.shape)}")
        self._impl.sample_into(list(out), beta)
        return out

    def update_priorities(self, transition_ids: IntsLike, priorities: RealsLike) -> int:
        """Set the priorities of sampled transitions (typically ``|TD error| + epsilon``), named
        by the batch's ``transition_ids``; new transitions get the largest priority given so far.

        ``priorities`` may live on any device (the learner's TD errors where they are); they are
        copied to the host as float64 once. A transition that has been overwritten since it was
        sampled is skipped, by rule: the
        priority was computed for it, not for the transition now in its slot. Returns how many
        priorities were applied. Priorities must be finite and > 0; ids must have been added.
        Every value is checked before any is applied, so a rejected call changes nothing.
        """
        ids = checks.as_cpu_tensor("transition_ids", transition_ids)
        values = checks.as_cpu_tensor("priorities", priorities, what="real numbers", dtype=torch.float64)
        return self._impl.update_priorities(ids, values)

    def get(self, indices: IntsLike) -> Batch:
        """Read the transitions in the given slots (as returned by ``add``), as tensors on
        ``device``: bit for bit what a CPU buffer given the same ``add`` calls returns."""
        return Batch(*self._impl.get(checks.as_cpu_tensor("indices", indices)))

    def state_dict(self) -> dict[str, Any]:
        """The stored transitions and the sampling generator's position, compactly (every frame
        once, about ``nbytes``): save it with ``torch.save`` and restore it into a new buffer with
        `load_state_dict`. Holds off concurrent ``add`` calls while it copies (a ``"kernel"``
        sampler refuses them instead)."""
        return {"settings": self._settings(), **self._impl.save_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict` into this buffer, which must be new (nothing added yet) and have
        the same settings (capacity, obs_shape, obs_dtype, frame_stack, num_envs, n_step, gamma,
        prioritized, alpha). States saved before prioritized replay existed load into uniform
        buffers.

        Afterwards ``len``, every slot's ``get``, the slots later ``add`` calls return, and the
        sequence of ``sample`` batches are the saved buffer's. Env streams start afresh: each
        stream's next ``add`` begins a new episode (an unfinished saved episode stays stored; its
        last transition bootstraps like any other non-terminal one).
        """
        self._impl.load_state(saved_state.checked_state(state, self._settings(), _C.REPLAY_STATE_KEYS))

    def _settings(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "obs_shape": list(self.obs_shape),
            "obs_dtype": str(self.obs_dtype),
            "frame_stack": self.frame_stack,
            "num_envs": self.num_envs,
            "n_step": self.n_step,
            "gamma": self.gamma,
            "prioritized": self.prioritized,
            "alpha": self.alpha,
        }

    def __len__(self) -> int:
        return len(self._impl)

    @property
    def capacity(self) -> int:
        return self._impl.capacity

    @property
    def nbytes(self) -> int:
        """Every byte the buffer has allocated: frames, transition records and bookkeeping, plus
        the (at most two) observation blocks that ``sample`` keeps for reuse, and ``device_nbytes``."""
        return self._impl.nbytes

    @property
    def device_nbytes(self) -> int:
        """The bytes of the ``"kernel"`` sampler's copy on ``device`` (0 for the host sampler)."""
        return self._impl.device_nbytes

    def __repr__(self) -> str:
        return (
            f"ReplayBuffer(capacity={self.capacity}, obs_shape={self.obs_shape}, "
            f"obs_dtype={self.obs_dtype}, frame_stack={self.frame_stack}, "
            f"num_envs={self.num_envs}, n_step={self.n_step}, prioritized={self.prioritized}, "
            f"device={str(self.device)!r}, sampler={self.sampler!r}, "
            f"len={len(self)}, nbytes={self.nbytes})"
        )


def _check_sampler(sampler: Any, device: torch.device) -> str:
    if sampler is None:
        return "host" if device.type == "cpu" else "kernel"
    if sampler not in ("host", "kernel"):
        raise ValueError(f"sampler: expected 'host' or 'kernel', got {sampler!r}")
    if sampler == "host" and device.type != "cpu":
        raise ValueError(
            f"sampler: 'host' samples into CPU memory; a buffer on {device} uses "
            "'kernel' (or leave sampler unset)"
        )
    return sampler
