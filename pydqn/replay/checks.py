"""Argument checks shared by the replay buffers: each error names the argument, what was expected
and what came."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pydqn._extension import load_extension
from pydqn.device import resolve_device

# The C++ buffer's inclusive size limits by argument (frame_stack, num_envs, n_step, capacity),
# which both buffers enforce.
LIMITS: dict[str, int] = load_extension().LIMITS


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name}: expected an int {bound}, got {value}")
    return value


def check_obs_shape(obs_shape: Any) -> tuple[int, ...]:
    if isinstance(obs_shape, np.ndarray):  # e.g. an env's observation_space.shape as an array
        if obs_shape.ndim > 1:
            raise TypeError(
                f"obs_shape: expected a 1-D sequence of ints, got an array of shape {obs_shape.shape}"
            )
        obs_shape = obs_shape.tolist()  # numbers as Python's, checked below like any sequence's
    if isinstance(obs_shape, numbers.Integral) and not isinstance(obs_shape, bool):
        obs_shape = (obs_shape,)
    if not isinstance(obs_shape, Sequence) or isinstance(obs_shape, str):
        raise TypeError(f"obs_shape: expected a tuple of ints, got {type(obs_shape).__name__}")
    return tuple(check_int(f"obs_shape[{i}]", d, minimum=1) for i, d in enumerate(obs_shape))


OBS_DTYPES = (
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint16,
    torch.uint32,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.bool,
)


def check_dtype(obs_dtype: Any) -> torch.dtype:
    if not isinstance(obs_dtype, torch.dtype):
        raise TypeError(f"obs_dtype: expected a torch.dtype such as torch.uint8, got {obs_dtype!r}")
    if obs_dtype not in OBS_DTYPES:
        raise TypeError(
            f"obs_dtype: expected a standard integer, floating point or bool dtype, got {obs_dtype}"
        )
    return obs_dtype


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
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}: expected a float in [0, 1], got {value!r}")
    return float(value)


def check_buffer_args(
    capacity: Any,
    obs_shape: Any,
    obs_dtype: Any,
    frame_stack: Any,
    num_envs: Any,
    device: Any,
    seed: Any,
    n_step: Any = 1,
    gamma: Any = 0.99,
    prioritized: Any = False,
    alpha: Any = 0.6,
    cuda_resident: bool = False,
) -> BufferArgs:
    if not isinstance(prioritized, bool):
        raise TypeError(f"prioritized: expected a bool, got {type(prioritized).__name__} {prioritized!r}")
    return BufferArgs(
        capacity=check_int("capacity", capacity, minimum=1),
        obs_shape=check_obs_shape(obs_shape),
        obs_dtype=check_dtype(obs_dtype),
        frame_stack=check_int("frame_stack", frame_stack, minimum=1, maximum=LIMITS["frame_stack"]),
        num_envs=check_int("num_envs", num_envs, minimum=1, maximum=LIMITS["num_envs"]),
        device=resolve_device(device, allow_cuda=cuda_resident),
        seed=None if seed is None else check_int("seed", seed, minimum=0, maximum=2**64 - 1),
        n_step=check_int("n_step", n_step, minimum=1, maximum=LIMITS["n_step"]),
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
            raise ValueError(
                f"beta: only a prioritized buffer takes beta (construct it with "
                f"prioritized=True); uniform sampling has weights of 1, got beta={beta!r}"
            )
        return None
    return check_fraction("beta", beta)


def as_cpu_tensor(
    name: str, value: Any, what: str = "integers", dtype: torch.dtype | None = None
) -> torch.Tensor:
    """A 1-D CPU tensor (from a number, a sequence, a numpy array or a tensor on any device); a
    single number becomes a sequence of one. `what` names the expected values in errors. With
    `dtype` (real numbers), bool and complex values are refused and the rest converted to it,
    in the same copy that brings a device tensor to the host."""
    if isinstance(value, torch.Tensor):
        if value.is_meta:
            raise ValueError(
                f"{name}: expected a tensor with values, got a meta tensor "
                "(it has a shape and dtype but no data)"
            )
        tensor = value
    else:
        if isinstance(value, np.ndarray) and not value.dtype.isnative:
            value = value.astype(value.dtype.newbyteorder("="))  # torch reads native byte order only
        try:  # through numpy: Python floats stay float64 (torch would make them float32)
            tensor = torch.from_numpy(np.array(value))
        except (TypeError, ValueError, RuntimeError, OverflowError) as error:
            raise TypeError(
                f"{name}: expected {what} as a sequence, numpy array or tensor, got "
                f"{type(value).__name__} ({error})"
            ) from None
        if tensor.numel() == 0 and what == "integers":
            tensor = tensor.long()  # an empty list has no dtype of its own
    if dtype is not None and (tensor.dtype == torch.bool or tensor.is_complex()):
        raise TypeError(f"{name}: expected real numbers, got {tensor.dtype}")
    tensor = tensor.to("cpu", dtype)  # one copy at most, whatever the device and dtype
    return tensor.reshape(1) if tensor.dim() == 0 else tensor
