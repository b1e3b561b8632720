"""Argument checks shared by the replay buffers: each error names the argument, what was expected
and what came."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from pydqn._extension import load_extension


def _limits() -> dict[str, int]:
    """The C++ buffer's inclusive size limits (`_C.LIMITS`). Read on first use, not at import:
    replay.py and py_replay.py import this module while the package is still initializing."""
    return load_extension().LIMITS


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name}: expected an int {bound}, got {value}")
    return value


def check_obs_shape(obs_shape: Any) -> tuple[int, ...]:
    if isinstance(obs_shape, numbers.Integral) and not isinstance(obs_shape, bool):
        obs_shape = (obs_shape,)
    if not isinstance(obs_shape, Sequence) or isinstance(obs_shape, str):
        raise TypeError(f"obs_shape: expected a tuple of ints, got {type(obs_shape).__name__}")
    return tuple(check_int(f"obs_shape[{i}]", d, minimum=1) for i, d in enumerate(obs_shape))


OBS_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16,
              torch.uint32, torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool)


def check_dtype(obs_dtype: Any) -> torch.dtype:
    if not isinstance(obs_dtype, torch.dtype):
        raise TypeError(f"obs_dtype: expected a torch.dtype such as torch.uint8, got {obs_dtype!r}")
    if obs_dtype not in OBS_DTYPES:
        raise TypeError(f"obs_dtype: expected a standard integer, floating point or bool dtype, "
                        f"got {obs_dtype}")
    return obs_dtype


def check_device(device: Any, cuda_resident: bool) -> torch.device:
    """'cpu', or with `cuda_resident` a CUDA device that exists (the buffer lives there)."""
    try:
        device = torch.device(device)
    except (TypeError, RuntimeError) as error:
        raise ValueError(f"device: expected 'cpu' or a torch.device, got {device!r} ({error})") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda" or not cuda_resident:
        where = "'cpu' or 'cuda'" if cuda_resident else "'cpu' (this buffer is host-resident)"
        raise ValueError(f"device: expected {where}, got device={str(device)!r}; sample on the "
                         "CPU and move batches with .to(device)")
    if not torch.cuda.is_available():
        raise ValueError(f"device: {str(device)!r} was asked for, but torch sees no CUDA device "
                         f"(torch {torch.__version__}, CUDA build: {torch.version.cuda})")
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise ValueError(f"device: {str(device)!r} does not exist; torch sees "
                         f"{torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)


@dataclass(frozen=True)
class BufferArgs:
    """The checked constructor arguments shared by the replay buffers."""

    capacity: int
    obs_shape: tuple[int, ...]
    obs_dtype: torch.dtype
    frame_stack: int
    num_envs: int
    device: torch.device
    seed: int | None
    n_step: int
    gamma: float
    prioritized: bool
    alpha: float


def check_fraction(name: str, value: Any) -> float:
    """A real number in [0, 1] (gamma, alpha, beta)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0.0 <= value <= 1.0):
        raise ValueError(f"{name}: expected a float in [0, 1], got {value!r}")
    return float(value)


def check_buffer_args(capacity: Any, obs_shape: Any, obs_dtype: Any, frame_stack: Any,
                      num_envs: Any, device: Any, seed: Any, n_step: Any = 1,
                      gamma: Any = 0.99, prioritized: Any = False,
                      alpha: Any = 0.6, cuda_resident: bool = False) -> BufferArgs:
    if not isinstance(prioritized, bool):
        raise TypeError(f"prioritized: expected a bool, got {type(prioritized).__name__} {prioritized!r}")
    return BufferArgs(
        capacity=check_int("capacity", capacity, minimum=1),
        obs_shape=check_obs_shape(obs_shape),
        obs_dtype=check_dtype(obs_dtype),
        frame_stack=check_int("frame_stack", frame_stack, minimum=1, maximum=_limits()["frame_stack"]),
        num_envs=check_int("num_envs", num_envs, minimum=1, maximum=_limits()["num_envs"]),
        device=check_device(device, cuda_resident),
        seed=None if seed is None else check_int("seed", seed, minimum=0, maximum=2**64 - 1),
        n_step=check_int("n_step", n_step, minimum=1, maximum=_limits()["n_step"]),
        gamma=check_fraction("gamma", gamma),
        prioritized=prioritized,
        alpha=check_fraction("alpha", alpha),
    )


def check_beta(prioritized: bool, beta: Any) -> float | None:
    """sample()'s beta: in [0, 1] for a prioritized buffer (default 0.4, Schaul et al.'s starting
    value), absent for a uniform one."""
    if prioritized and beta is None:
        return 0.4
    if not prioritized:
        if beta is not None:
            raise ValueError(f"beta: only a prioritized buffer takes beta (construct it with "
                             f"prioritized=True); uniform sampling has weights of 1, got beta={beta!r}")
        return None
    return check_fraction("beta", beta)


def as_cpu_tensor(name: str, value: Any, what: str = "integers") -> torch.Tensor:
    """A 1-D CPU tensor (from a number, a sequence, a numpy array or a tensor on any device); a
    single number becomes a sequence of one. `what` names the expected values in errors."""
    if isinstance(value, torch.Tensor):
        tensor = value if value.device.type == "cpu" else value.cpu()
    else:
        try:  # through numpy: Python floats stay float64 (torch would make them float32)
            tensor = torch.from_numpy(np.array(value))
        except (TypeError, ValueError, RuntimeError, OverflowError) as error:
            raise TypeError(f"{name}: expected {what} as a sequence, numpy array or tensor, got "
                            f"{type(value).__name__} ({error})") from None
        if tensor.numel() == 0 and what == "integers":
            tensor = tensor.long()  # an empty list has no dtype of its own
    return tensor.reshape(1) if tensor.dim() == 0 else tensor
