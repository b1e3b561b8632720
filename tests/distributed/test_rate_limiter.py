"""The rate limiter holds samples per insert inside its error buffer, both ways, under threads."""

from __future__ import annotations

import threading
import time

import pytest

from pydqn.distributed import RateLimiter, RateLimiterClosed


def test_samples_wait_for_the_minimum_size_and_inserts_do_not() -> None:
    limiter = RateLimiter(samples_per_insert=2.0, min_size_to_sample=10, error_buffer=8, max_insert=4)
    assert not limiter.sample(1, timeout=0.01)
    for _ in range(5):
        assert limiter.insert(2, timeout=0)
    assert limiter.sample(1, timeout=0)


def test_the_ratio_stays_inside_the_error_buffer_each_way() -> None:
    limiter = RateLimiter(
        samples_per_insert=4.0, min_size_to_sample=5, error_buffer=20, max_insert=2, max_sample=8
    )
    for _ in range(3):
        limiter.insert(2)
    inserts = 0
    while limiter.insert(2, timeout=0):  # the actors race ahead: stopped at the buffer's edge
        inserts += 1
    assert inserts > 0 and limiter.diff <= limiter.max_diff
    while limiter.sample(8, timeout=0):  # the learner samples: stopped at the other edge
        pass
    assert limiter.diff >= limiter.min_diff and not limiter.can_sample(8)


def test_threads_hold_the_ratio_at_every_step() -> None:
    limiter = RateLimiter(
        samples_per_insert=8.0, min_size_to_sample=100, error_buffer=400, max_insert=16, max_sample=32
    )
    seen: list[float] = []
    stop = threading.Event()

    def actor() -> None:
        while not stop.is_set():
            if limiter.insert(16, timeout=0.05):
                seen.append(limiter.diff)

    def learner() -> None:
        for _ in range(300):
            assert limiter.sample(32, timeout=5)
            seen.append(limiter.diff)
        stop.set()

    threads = [threading.Thread(target=actor) for _ in range(2)] + [threading.Thread(target=learner)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert stop.is_set() and limiter.sampled == 300 * 32
    inside = [d for d in seen[10:] if limiter.min_diff <= d <= limiter.max_diff]
    assert len(inside) == len(seen[10:])  # (the first inserts fill up to the minimum size)
    # samples per insert: 8, off by at most the error buffer (counted from the minimum size's 800)
    assert abs(8.0 * limiter.inserted - limiter.sampled - 800) <= 400
    assert limiter.insert_waits > 0  # the actors were slowed


def test_close_wakes_waiters_with_an_error() -> None:
    limiter = RateLimiter(samples_per_insert=1.0, min_size_to_sample=10, error_buffer=5)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            limiter.sample(1)
        except RateLimiterClosed as error:
            errors.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.05)
    limiter.close()
    waiter.join(timeout=5)
    assert len(errors) == 1 and not waiter.is_alive()
    with pytest.raises(RateLimiterClosed):
        limiter.insert(1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(samples_per_insert=0, min_size_to_sample=1, error_buffer=1), "samples_per_insert"),
        (dict(samples_per_insert=1, min_size_to_sample=0, error_buffer=1), "min_size_to_sample"),
        (dict(samples_per_insert=4, min_size_to_sample=1, error_buffer=10, max_insert=50), "error_buffer"),
    ],
)
def test_settings_that_could_never_admit_a_call_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RateLimiter(**kwargs)


def test_waiting_to_insert_counts_nothing_until_the_rows_are_stored() -> None:
    limiter = RateLimiter(samples_per_insert=1.0, min_size_to_sample=4, error_buffer=8.0, max_insert=4)
    assert limiter.wait_to_insert(4, timeout=0)
    assert limiter.inserted == 0 and not limiter.can_sample(1)  # not stored yet: no sample
    limiter.inserted_now(4)
    assert limiter.inserted == 4 and limiter.can_sample(1)
    assert limiter.wait_to_insert(4, timeout=0) and limiter.wait_to_insert(4, timeout=0)  # room left
    limiter.inserted_now(4)
    limiter.inserted_now(4)
    assert not limiter.wait_to_insert(1, timeout=0.01)  # diff 12 = centre 4 + 8: full


def test_a_closed_pause_gate_holds_workers_out_until_reopened_or_opened_for_good() -> None:
    from pydqn.distributed.pause_gate import PauseGate

    gate, passed = PauseGate(), threading.Event()

    def worker() -> None:
        with gate.working():
            passed.set()

    with gate.closed():
        thread = threading.Thread(target=worker)
        thread.start()
        assert not passed.wait(0.2)  # held out while closed
    assert passed.wait(5)
    thread.join()
    passed.clear()
    stuck = gate.closed()
    stuck.__enter__()  # closed, and never reopened (an interrupted pause)
    gate.open_for_good()
    worker()
    assert passed.is_set()
