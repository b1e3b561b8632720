"""Typed settings: dataclass fields that carry their one-line doc, their group, their valid values
and whether a resumed run may change them.

The configuration dataclasses (`pydqn.agent.LearnerConfig`, `pydqn.training.TrainConfig`) declare
each field with `setting`; `check_setting` and `checked_fields` hold every value to its field's type
(no coercion: ``96.7`` is not an int, ``true`` is not 1, ``"96"`` is not a number) and range, and
the command line builds its flags and ``--help`` from the same metadata.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

# Bounds on counts, so that a typo (an extra zero or three) is caught up front, not hours into a run.
MAX_COUNT = 10**12


T = TypeVar("T")


class SettingError(ValueError):
    """A setting whose value has the wrong type or is out of its range."""


@dataclass(frozen=True)
class Range:
    """The values a number accepts: ``low``/``high`` bounds (None: unbounded), each inclusive or
    not; floats must also be finite."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        return "finite"


def _number(value: float) -> str:
    if value == MAX_COUNT:
        return "10^12"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else str(value)


UNIT = Range(0.0, 1.0)  # a probability or a fraction
POSITIVE = Range(1, MAX_COUNT)
NON_NEGATIVE = Range(0, MAX_COUNT)
# Seeds every env accepts, with room for the per-env and evaluation offsets pydqn adds.
MAX_SEED = 2**30
SEEDS = Range(0, MAX_SEED)
EPISODE_COUNTS = Range(1, 100_000)  # episodes per evaluation


def setting(
    default: Any,
    doc: str,
    *,
    group: str,
    valid: Range | None = None,
    resumable: bool = False,
    flag: str | None = None,
) -> Any:
    """A dataclass field with its metadata. ``doc`` is the flag's one-line help; ``valid`` the
    range of a number (of each item of a tuple); ``resumable``: a resumed run may change it (it does
    not change the network, the replay buffer's contents or the env); ``flag`` replaces the
    generated ``--field-name``."""
    return dataclasses.field(
        default=default,
        metadata={"doc": doc, "group": group, "valid": valid, "resumable": resumable, "flag": flag},
    )


def setting_fields(config_class: type) -> list[tuple[dataclasses.Field, Any]]:
    """The fields of a configuration dataclass with their resolved type hints."""
    hints = typing.get_type_hints(config_class)
    return [(field, hints[field.name]) for field in dataclasses.fields(config_class)]


def describe_type(hint: Any) -> str:
    """What a value of type ``hint`` is, as an error message says it."""
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return "a list of integers"
    optional = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if len(optional) == 1:
        return describe_type(optional[0]) + " (or unset)"
    return str(hint)


def check_setting(name: str, hint: Any, value: Any, valid: Range | None) -> Any:
    """``value`` as the setting ``name`` of type ``hint`` holds it; raises `SettingError` naming
    ``name``, what it expects and what came, for a value of another type or out of range."""
    checked = _typed(hint, value)
    if checked is _WRONG_TYPE:
        raise SettingError(f"{name}: expected {describe_type(hint)}, got {value!r}")
    if valid is not None and checked is not None:
        for item in checked if isinstance(checked, tuple) else (checked,):
            if item not in valid:
                what = "items" if isinstance(checked, tuple) else "a value"
                raise SettingError(f"{name}: expected {what} {valid.describe()}, got {value!r}")
    return checked


_WRONG_TYPE = object()


def _typed(hint: Any, value: Any) -> Any:
    if hint is bool:
        return value if isinstance(value, bool) else _WRONG_TYPE
    if hint is int:
        return int(value) if _is_int(value) else _WRONG_TYPE
    if hint is float:
        is_number = _is_int(value) or (isinstance(value, float) and not isinstance(value, bool))
        return float(value) if is_number else _WRONG_TYPE
    if hint is str:
        return value if isinstance(value, str) else _WRONG_TYPE
    if typing.get_origin(hint) is Literal:
        return value if isinstance(value, str) and value in typing.get_args(hint) else _WRONG_TYPE
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)) or not value or not all(_is_int(v) for v in value):
            return _WRONG_TYPE
        return tuple(int(v) for v in value)
    if value is None and type(None) in typing.get_args(hint):
        return None
    optional = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return _typed(optional[0], value) if len(optional) == 1 else _WRONG_TYPE


def _is_int(value: Any) -> bool:
    # numpy integers count (they come from arrays); bools do not, though Python calls them ints.
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def checked_fields(config: T, prefix: str = "") -> T:
    """A copy of a configuration dataclass whose every field (and those of the dataclasses nested
    in it) went through `check_setting`: values as their types hold them (a numpy integer becomes
    an int, a list a tuple), or `SettingError` for the first that does not fit."""
    changes = {}
    for field, hint in setting_fields(type(config)):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            changes[field.name] = checked_fields(value, f"{prefix}{field.name}.")
        else:
            changes[field.name] = check_setting(prefix + field.name, hint, value, field.metadata.get("valid"))
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]
