"""Sampling: uniform with replacement over what is stored, reproducible from the seed."""

import math

import numpy as np
import pytest
import torch
from streams import StackedEnvs, add_rows, assert_same_batch

import pydqn


def filled(capacity, adds, seed=0, num_envs=2):
    envs = StackedEnvs(num_envs, (3, 3), 4, torch.uint8, seed=11)
    buf = pydqn.ReplayBuffer(capacity, envs.obs_shape, frame_stack=4, num_envs=num_envs, seed=seed)
    rng = np.random.default_rng(11)
    for step in range(adds):
        add_rows([buf], envs, range(num_envs), ["truncated" if step % 13 == 12 else "run"] * num_envs, rng)
    return buf


def chi_square_critical(df: int, z: float) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile at standard-normal score z."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def test_same_seed_same_calls_same_batches():
    a, b = filled(50, 40, seed=123), filled(50, 40, seed=123)
    for batch_size in (1, 7, 32):
        assert_same_batch(a.sample(batch_size), b.sample(batch_size))
    assert not torch.equal(filled(50, 40, seed=124).sample(32).indices, a.sample(32).indices)


def test_sample_into_out_matches_allocating_sample():
    a, b = filled(50, 40, seed=5), filled(50, 40, seed=5)
    out = a.sample(16)
    same = a.sample(16, out=out)
    assert same is out
    b.sample(16)
    assert_same_batch(out, b.sample(16))


def test_samples_only_stored_transitions_and_match_get():
    buf = filled(100, 15)  # 30 of 100 slots used
    batch = buf.sample(500)
    assert batch.indices.min() >= 0 and batch.indices.max() < len(buf) == 30
    assert_same_batch(batch, buf.get(batch.indices))


@pytest.mark.parametrize("capacity,adds", [(64, 20), (64, 100)])  # partly filled, and wrapped
def test_sampled_slots_are_uniform(capacity, adds):
    buf = filled(capacity, adds, seed=2024)
    stored = len(buf)
    draws = 200 * stored
    counts = np.bincount(buf.sample(draws).indices.numpy(), minlength=stored)
    expected = draws / stored
    statistic = float(((counts - expected) ** 2 / expected).sum())
    assert statistic < chi_square_critical(stored - 1, z=3.09), statistic  # p = 0.001
    # And the test has teeth: the same counts with one slot never drawn would be rejected.
    biased = counts.copy()
    biased[1] += biased[0]
    biased[0] = 0
    assert float(((biased - expected) ** 2 / expected).sum()) > chi_square_critical(stored - 1, 3.09)


def test_a_held_batch_is_never_overwritten_by_later_samples():
    """sample() recycles output blocks, but only once every tensor over a block is dropped."""
    buf = filled(50, 40)
    kept = buf.sample(8)
    kept_copy = [t.clone() for t in kept]
    only_next_obs = buf.sample(8).next_obs  # its obs half was dropped at once
    next_obs_copy = only_next_obs.clone()
    for _ in range(6):
        buf.sample(8)
    assert all(torch.equal(a, b) for a, b in zip(kept, kept_copy, strict=True))
    assert torch.equal(only_next_obs, next_obs_copy)
    assert_same_batch(kept, buf.get(kept.indices))


def test_out_batch_halves_must_not_overlap():
    buf = filled(50, 40)
    out = buf.sample(4)
    with pytest.raises(ValueError, match="out: obs and next_obs must not share memory"):
        buf.sample(4, out=out._replace(next_obs=out.obs))
