"""The form of a `ReplayBuffer.state_dict()`: its keys, its settings and the Python types of its
values, checked before the extension sees it. The extension then checks the values themselves
(shapes, dtypes, ranges, consistency), so that a refused state changes nothing."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from pydqn.replay import checks

# What states saved before prioritized replay existed lack: they are uniform buffers' states.
_UNPRIORITIZED = {"prioritized": False, "alpha": 0.6}
_UNPRIORITIZED_STATE = {"priorities": None, "max_priority": 1.0}

# The numbers of a state; its other keys (the extension's REPLAY_STATE_KEYS) hold tensors or None.
# Counters are ints in their C++ types' ranges, transitions ever added bounded as the buffer numbers
# them (LIMITS["added"]).
_COUNTERS = {"added": checks.LIMITS["added"], "rng_seed": 2**64 - 1, "rng_draws": 2**64 - 1}
_REALS = ("max_priority",)


def checked_state(state: Any, settings: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The fields `keys` of `state` for the extension's load_state, after checking that `state`
    is a dict with exactly a state_dict()'s keys, saved with `settings`, and that each value has
    the type state_dict() gives it. Older states get the fields they predate."""
    if not isinstance(state, dict) or "settings" not in state:
        raise TypeError(f"state: expected a dict from ReplayBuffer.state_dict(), got {type(state).__name__}")
    saved = state["settings"]
    if not isinstance(saved, dict):
        raise TypeError(f"state['settings']: expected a dict, got {type(saved).__name__}")
    if "prioritized" not in saved:
        saved, state = {**_UNPRIORITIZED, **saved}, {**_UNPRIORITIZED_STATE, **state}
    _check_keys("state['settings']", saved, settings)
    for name, value in settings.items():
        if saved[name] != value:
            raise ValueError(
                f"state: saved from a buffer with {name}={saved[name]!r}, this one has {name}={value!r}"
            )
    _check_keys("state", state, ("settings", *keys))
    fields: dict[str, Any] = {}
    for name in keys:
        value = state[name]
        if name in _COUNTERS:
            value = checks.check_int(f"state[{name!r}]", value, minimum=0, maximum=_COUNTERS[name])
        elif name in _REALS:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"state[{name!r}]: expected a float, got {type(value).__name__} {value!r}")
            value = float(value)
        elif value is not None and not isinstance(value, torch.Tensor):
            raise TypeError(
                f"state[{name!r}]: expected a torch.Tensor or None, as state_dict() saves it, "
                f"got {type(value).__name__}"
            )
        fields[name] = value
    return fields


def _check_keys(where: str, given: dict[str, Any], expected: Any) -> None:
    missing = [name for name in expected if name not in given]
    unexpected = [name for name in given if name not in expected]
    if missing or unexpected:
        parts = [f"missing {missing}"] if missing else []
        parts += [f"unexpected {unexpected}"] if unexpected else []
        raise ValueError(f"{where}: {' and '.join(parts)}; expected a dict from ReplayBuffer.state_dict()")
