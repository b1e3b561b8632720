"""The segment trees of prioritized replay against numpy (sums, minima, prefix search), and
under concurrent writers."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pydqn._extension import load_extension

_C = load_extension()


@settings(max_examples=60)
@given(capacity=st.integers(1, 70), data=st.data())
def test_sums_minima_and_prefix_search_match_numpy(capacity, data):
    sums, minima = _C.SumTree(capacity), _C.MinTree(capacity)
    values = np.zeros(capacity)  # a sum tree's empty leaves are 0, a min tree's +inf
    set_values = np.full(capacity, np.inf)
    for _ in range(data.draw(st.integers(1, 3 * capacity))):
        index = data.draw(st.integers(0, capacity - 1))
        value = data.draw(st.sampled_from([0.0, 1e-6, 0.5, 1.0, 3.25, 1e3]))
        sums.set(index, value)
        minima.set(index, value)
        values[index] = set_values[index] = value
    assert sums.root == pytest.approx(values.sum(), rel=1e-12, abs=1e-12)
    assert minima.root == set_values.min()
    if values.sum() == 0:
        return  # nothing to search
    cumulative = np.cumsum(values)
    for mass in np.linspace(0, values.sum(), 17, endpoint=False):
        expected = int(np.searchsorted(cumulative, mass, side="right"))
        found = sums.find_prefix(mass)
        # Equal up to rounding at a boundary: the leaf found holds mass at that point.
        assert found == expected or abs(cumulative[min(found, expected)] - mass) < 1e-9, (mass, found)
        assert values[found] > 0


def test_concurrent_writers_leave_every_node_exact():
    capacity, writers = 1000, 4
    sums, minima = _C.SumTree(capacity), _C.MinTree(capacity)
    finals = np.random.default_rng(0).uniform(0.5, 2.0, capacity)

    def write(part):
        rng = np.random.default_rng(part)
        mine = np.arange(part, capacity, writers)
        for _ in range(20):
            for i in rng.permutation(mine):
                sums.set(int(i), float(rng.uniform(0.1, 5.0)))
                minima.set(int(i), float(rng.uniform(0.1, 5.0)))
        for i in mine:
            sums.set(int(i), float(finals[i]))
            minima.set(int(i), float(finals[i]))

    threads = [threading.Thread(target=write, args=(part,)) for part in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sums.root == pytest.approx(finals.sum(), rel=1e-12)
    assert minima.root == finals.min()
    cumulative = np.cumsum(finals)
    for mass in np.linspace(0, finals.sum(), 101, endpoint=False):
        assert sums.find_prefix(mass) == int(np.searchsorted(cumulative, mass, side="right"))


def test_bad_capacity_and_index():
    with pytest.raises(ValueError, match="capacity: expected at least 1, got 0"):
        _C.SumTree(0)
    with pytest.raises(IndexError, match=r"index: expected \[0, 4\), got 4"):
        _C.SumTree(3).set(4, 1.0)
