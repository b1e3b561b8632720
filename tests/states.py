"""Comparing ReplayBuffer.state_dict()s, for the tests: equal means every tensor torch.equal with
the same dtype, and every other value equal and of the same type."""

from __future__ import annotations

import torch


def assert_same_state(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, torch.Tensor):
            other = actual[name]
            assert isinstance(other, torch.Tensor) and other.dtype == value.dtype, name
            assert torch.equal(other, value), name
        else:
            assert actual[name] == value and type(actual[name]) is type(value), name
