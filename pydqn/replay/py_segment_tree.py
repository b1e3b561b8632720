"""The segment trees of prioritized replay as DQN teaching code writes them (OpenAI baselines'
``segment_tree.py``): plain Python lists, one loop up per update and one loop down per draw.

Kept plain on purpose: `PyReplayBuffer` samples with them, and the prioritized benchmarks compare
the C++ trees against them. Do not optimize them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable


class SegmentTree:
    """A binary tree over ``capacity`` leaves (rounded up to a power of two) whose inner nodes
    hold ``operation`` of their children; ``root()`` is ``operation`` over all leaves."""

    def __init__(
        self, capacity: int, operation: Callable[[float, float], float], neutral_element: float
    ) -> None:
        self.capacity = 1
        while self.capacity < capacity:
            self.capacity *= 2
        self._operation = operation
        self._value = [neutral_element for _ in range(2 * self.capacity)]

    def __setitem__(self, index: int, value: float) -> None:
        index += self.capacity
        self._value[index] = value
        index //= 2
        while index >= 1:
            self._value[index] = self._operation(self._value[2 * index], self._value[2 * index + 1])
            index //= 2

    def __getitem__(self, index: int) -> float:
        return self._value[self.capacity + index]

    def root(self) -> float:
        return self._value[1]


class SumSegmentTree(SegmentTree):
    def __init__(self, capacity: int) -> None:
        super().__init__(capacity, operator.add, 0.0)

    def find_prefixsum_idx(self, prefixsum: float) -> int:
        """The highest index i such that sum(leaves[:i]) <= prefixsum."""
        index = 1
        while index < self.capacity:
            if self._value[2 * index] > prefixsum:
                index = 2 * index
            else:
                prefixsum -= self._value[2 * index]
                index = 2 * index + 1
        return index - self.capacity


class MinSegmentTree(SegmentTree):
    def __init__(self, capacity: int) -> None:
        super().__init__(capacity, min, float("inf"))
