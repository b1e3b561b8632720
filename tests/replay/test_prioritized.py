"""Prioritized replay: the sampling distribution (chi-square), the importance-sampling weights by
hand, new transitions at the running maximum, the overwritten-id rule, bad priorities, state."""

import math
from functools import partial

import numpy as np
import pytest
import torch

from pydqn import ReplayBuffer
from pydqn.replay.py_buffer import PyReplayBuffer

# The host sampler, the oracle, and the device sampler (drawn on the host from the same trees,
# gathered by the kernel): its CPU twin and CUDA.
BUFFERS = [
    ReplayBuffer,
    PyReplayBuffer,
    pytest.param(partial(ReplayBuffer, sampler="kernel"), id="kernel-cpu"),
    pytest.param(partial(ReplayBuffer, device="cuda"), id="kernel-cuda", marks=pytest.mark.cuda),
]


def filled(cls, count, capacity=None, n_step=1, alpha=0.6, seed=0, episode=None):
    """A buffer of `count` (2,)-float transitions from one env stream; transition t's obs is
    (t, t) and its action t. `episode`: episode length (default: one episode throughout)."""
    buf = cls(
        capacity or count,
        (2,),
        torch.float32,
        seed=seed,
        n_step=n_step,
        gamma=0.5,
        prioritized=True,
        alpha=alpha,
    )
    for t in range(count):
        ends = episode is not None and (t + 1) % episode == 0
        buf.add(
            np.full((1, 2), t, np.float32),
            [t],
            [float(t)],
            np.full((1, 2), t + 1, np.float32),
            [ends],
            [False],
        )
    return buf


def chi_square(counts, probabilities):
    expected = counts.sum() * probabilities
    return float(((counts - expected) ** 2 / expected).sum())


def chi_square_critical(df, z=3.09):
    """The 0.999 quantile of chi-square(df), by the Wilson-Hilferty approximation."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def draw_counts(buf, count, draws, beta=0.4):
    counts = np.zeros(count)
    for _ in range(draws // 250):
        ids = buf.sample(250, beta=beta).transition_ids.cpu().numpy()
        counts += np.bincount(ids, minlength=count)[:count]
    return counts


@pytest.mark.parametrize("cls", BUFFERS)
def test_sampling_distribution_is_proportional_to_priority_to_the_alpha(cls):
    count, alpha = 50, 0.6
    buf = filled(cls, count, alpha=alpha)
    priorities = np.random.default_rng(1).uniform(0.1, 10.0, count)
    assert buf.update_priorities(torch.arange(count), torch.tensor(priorities)) == count
    counts = draw_counts(buf, count, 25_000)
    p = priorities**alpha / (priorities**alpha).sum()
    critical = chi_square_critical(count - 1)
    assert chi_square(counts, p) < critical
    # The same statistic tells a wrong distribution apart: the counts are far from uniform.
    assert chi_square(counts, np.full(count, 1 / count)) > 10 * critical


@pytest.mark.parametrize("cls", BUFFERS)
def test_open_n_step_windows_are_never_drawn_and_the_rest_are_proportional(cls):
    # Episodes of 7 with n = 3: the last 2 transitions' windows are open (no later step yet).
    count = 40
    buf = filled(cls, count, n_step=3, episode=7)
    stored = np.arange(count)
    sampleable = stored < count - 2
    priorities = np.random.default_rng(2).uniform(0.5, 4.0, count)
    applied = buf.update_priorities(torch.arange(count), torch.tensor(priorities))
    assert applied == sampleable.sum()  # open windows cannot have been sampled: skipped
    counts = draw_counts(buf, count, 20_000)
    assert counts[~sampleable].sum() == 0
    p = priorities[sampleable] ** 0.6
    assert chi_square(counts[sampleable], p / p.sum()) < chi_square_critical(sampleable.sum() - 1)


@pytest.mark.parametrize("cls", BUFFERS)
@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
def test_weights_match_a_hand_computation(cls, beta):
    count, alpha = 12, 0.7
    buf = filled(cls, count, alpha=alpha)
    priorities = np.linspace(0.2, 5.0, count)
    buf.update_priorities(list(range(count)), priorities.tolist())
    batch = buf.sample(64, beta=beta)
    ids = batch.transition_ids.numpy()
    # w_i = (N P(i))^-beta / max_j (N P(j))^-beta, P(i) = p_i^alpha / sum_k p_k^alpha
    probability = priorities**alpha / (priorities**alpha).sum()
    weight = (count * probability) ** -beta / ((count * probability.min()) ** -beta)
    np.testing.assert_allclose(batch.weights.numpy(), weight[ids], rtol=1e-6)
    assert batch.weights.dtype == torch.float32 and float(batch.weights.max()) <= 1.0
    np.testing.assert_array_equal(batch.action.numpy(), ids)  # the rows are those transitions
    np.testing.assert_array_equal(batch.indices.numpy(), ids % count)


@pytest.mark.parametrize("cls", BUFFERS)
def test_new_transitions_get_the_largest_priority_given_so_far(cls):
    buf = filled(cls, 10, capacity=20, alpha=1.0)
    buf.update_priorities(list(range(10)), [1.0] * 9 + [4.0])
    buf.update_priorities([9], [0.5])  # the maximum is a running one: it stays 4
    buf.add(np.full((1, 2), 10, np.float32), [10], [0.0], np.full((1, 2), 11, np.float32), [False], [False])
    counts = draw_counts(buf, 11, 10_000, beta=1.0)
    p = np.array([1.0] * 9 + [0.5, 4.0])
    assert chi_square(counts, p / p.sum()) < chi_square_critical(10)
    batch = buf.sample(50, beta=1.0)
    new = batch.transition_ids == 10
    assert new.any()
    np.testing.assert_allclose(batch.weights[new].numpy(), (4.0 / 0.5) ** -1.0, rtol=1e-6)


@pytest.mark.parametrize("cls", BUFFERS)
def test_updates_for_overwritten_transitions_are_ignored(cls):
    buf = filled(cls, 4, capacity=4, alpha=1.0)
    sampled = buf.sample(64, beta=1.0).transition_ids
    assert set(sampled.tolist()) == {0, 1, 2, 3}
    for t in (4, 5):  # overwrite transitions 0 and 1 (slots 0 and 1)
        buf.add(
            np.full((1, 2), t, np.float32), [t], [0.0], np.full((1, 2), t + 1, np.float32), [False], [False]
        )
    # Their update would have made slots 0 and 1 a hundred times likelier: it is skipped.
    assert buf.update_priorities([0, 1, 2, 3], [100.0, 100.0, 1.0, 1.0]) == 2
    counts = draw_counts(buf, 6, 5_000)
    assert counts[:2].sum() == 0
    # 4 and 5 kept the running max (1, from their add), 2 and 3 have the priority given: 1.
    assert chi_square(counts[2:], np.full(4, 0.25)) < chi_square_critical(3)


@pytest.mark.parametrize("cls", BUFFERS)
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_priority_is_refused_and_changes_nothing(cls, bad):
    buf = filled(cls, 8, alpha=1.0)
    buf.update_priorities([0], [3.0])
    with pytest.raises(ValueError, match=r"priorities: expected finite values > 0, got .* at position 1"):
        buf.update_priorities([1, 2, 3], [5.0, bad, 5.0])
    counts = draw_counts(buf, 8, 5_000)
    p = np.array([3.0] + [1.0] * 7)  # neither 1 nor 3 got the 5 that came before the bad value
    assert chi_square(counts, p / p.sum()) < chi_square_critical(7)


@pytest.mark.parametrize("cls", BUFFERS)
def test_priority_argument_errors(cls):
    buf = filled(cls, 8)
    with pytest.raises(IndexError, match="transition_ids: 8 at position 1 was never added"):
        buf.update_priorities([0, 8], [1.0, 1.0])
    with pytest.raises(IndexError, match="transition_ids: -1 at position 0 was never added"):
        buf.update_priorities([-1], [1.0])
    with pytest.raises(ValueError, match=r"priorities: expected shape \(2,\)"):
        buf.update_priorities([0, 1], [1.0])
    with pytest.raises(ValueError, match=r"beta: expected a float in \[0, 1\], got 1.5"):
        buf.sample(4, beta=1.5)
    uniform = cls(8, (2,), torch.float32)
    with pytest.raises(ValueError, match="update_priorities: this buffer samples uniformly"):
        uniform.update_priorities([0], [1.0])
    with pytest.raises(ValueError, match="beta: only a prioritized buffer takes beta"):
        uniform.sample(4, beta=0.4)
    with pytest.raises(ValueError, match=r"alpha: expected a float in \[0, 1\], got 2"):
        cls(8, (2,), torch.float32, prioritized=True, alpha=2)
    with pytest.raises(TypeError, match="prioritized: expected a bool"):
        cls(8, (2,), torch.float32, prioritized="yes")


def test_priorities_on_another_device_or_dtype_are_taken():
    buf = filled(ReplayBuffer, 4, alpha=1.0)
    assert buf.update_priorities(np.array([0, 1], np.int32), np.array([2, 2], np.int64)) == 2
    assert buf.update_priorities(torch.tensor([2]), torch.tensor([2.0], dtype=torch.float16)) == 1
    with pytest.raises(TypeError, match=r"priorities: expected real numbers, got torch\.bool"):
        buf.update_priorities([0], torch.tensor([True]))
    with pytest.raises(TypeError, match="transition_ids: expected integers"):
        buf.update_priorities(torch.tensor([0.5]), [1.0])


def test_uniform_batches_carry_unit_weights_and_transition_ids():
    buf = ReplayBuffer(4, (2,), torch.float32, seed=0)
    for t in range(7):
        buf.add(
            np.full((1, 2), t, np.float32), [t], [0.0], np.full((1, 2), t + 1, np.float32), [False], [False]
        )
    batch = buf.sample(32)
    assert torch.equal(batch.weights, torch.ones(32))
    assert set(batch.transition_ids.tolist()) == {3, 4, 5, 6}
    assert torch.equal(batch.transition_ids, batch.action)
    assert torch.equal(batch.indices, batch.transition_ids % 4)
    assert torch.equal(buf.get([0, 1]).transition_ids, torch.tensor([4, 5]))


def test_state_dict_round_trip_keeps_priorities_and_the_sample_sequence():
    buf = filled(ReplayBuffer, 30, capacity=20, n_step=2, episode=6, alpha=0.5, seed=3)
    buf.update_priorities(torch.arange(10, 28), torch.linspace(0.1, 9.0, 18))
    state = torch.load(_saved(buf.state_dict()), weights_only=True)
    restored = ReplayBuffer(20, (2,), torch.float32, n_step=2, gamma=0.5, prioritized=True, alpha=0.5)
    restored.load_state_dict(state)
    for _ in range(3):
        a, b = buf.sample(16, beta=0.6), restored.sample(16, beta=0.6)
        for name, x, y in zip(a._fields, a, b, strict=True):
            assert torch.equal(x, y), name
    # The running maximum came along: a new transition gets 9.0, in both.
    for target in (buf, restored):
        target.add(
            np.full((1, 2), 30, np.float32), [30], [0.0], np.full((1, 2), 31, np.float32), [True], [False]
        )
    assert torch.equal(buf.sample(64, beta=1.0).weights, restored.sample(64, beta=1.0).weights)


def test_a_state_with_bad_priorities_is_refused():
    buf = filled(ReplayBuffer, 6, alpha=1.0)
    state = buf.state_dict()
    state["priorities"] = state["priorities"].clone()
    state["priorities"][2] = float("nan")
    fresh = ReplayBuffer(6, (2,), torch.float32, gamma=0.5, prioritized=True, alpha=1.0)
    with pytest.raises(
        ValueError, match=r"state\['priorities'\]: expected a value in \(0, [\d.e+]+\] at row 2, got nan"
    ):
        fresh.load_state_dict(state)
    assert len(fresh) == 0
    uniform = ReplayBuffer(6, (2,), torch.float32, gamma=0.5)
    with pytest.raises(ValueError, match="state: saved from a buffer with prioritized=True"):
        uniform.load_state_dict(buf.state_dict())


def _saved(state):
    import io

    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    return stream


def test_sample_into_an_out_batch_with_beta():
    buf = filled(ReplayBuffer, 10, alpha=1.0)
    buf.update_priorities(list(range(10)), np.linspace(1.0, 10.0, 10))
    out = buf.sample(8, beta=1.0)
    again = buf.sample(8, out=out, beta=0.5)
    assert again is out
    np.testing.assert_allclose(out.weights.numpy(), (out.action.numpy() + 1.0) ** -0.5, rtol=1e-6)


@pytest.mark.parametrize("cls", BUFFERS)
def test_priorities_are_read_as_float64_and_a_sum_that_would_overflow_is_refused(cls):
    buf = filled(cls, 4, alpha=1.0)
    if cls is ReplayBuffer:
        with pytest.raises(ValueError, match=r"priorities: 1e\+308 at position 0 is too large"):
            buf.update_priorities([0], [1e308])
    assert buf.update_priorities([1], [1e39]) == 1  # a float32 would be inf
    assert buf.update_priorities([], []) == 0
    batch = buf.sample(64, beta=1.0)
    assert (batch.transition_ids == 1).float().mean() > 0.9
    assert float(batch.weights.min()) > 0  # 1e-39 is below float32's normal range: clamped, not 0


def test_uniform_states_saved_before_prioritized_replay_still_load():
    buf = ReplayBuffer(8, (2,), torch.float32, seed=1)
    for t in range(5):
        buf.add(
            np.full((1, 2), t, np.float32), [t], [0.0], np.full((1, 2), t + 1, np.float32), [False], [False]
        )
    state = buf.state_dict()
    for key in ("priorities", "max_priority"):
        del state[key]
    for key in ("prioritized", "alpha"):
        del state["settings"][key]
    restored = ReplayBuffer(8, (2,), torch.float32)
    restored.load_state_dict(state)
    assert torch.equal(restored.sample(16).obs, buf.sample(16).obs)
