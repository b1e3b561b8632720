"""Bad input gets a clear exception naming the argument, and leaves the buffer as it was."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from states import assert_same_state
from streams import StackedEnvs, assert_same_batch

import pydqn

K, FRAME = 4, (6, 6)
OBS_SHAPE = (K, *FRAME)


@pytest.fixture
def setup():
    envs = StackedEnvs(2, FRAME, K, torch.uint8, seed=7)
    buf = pydqn.ReplayBuffer(8, OBS_SHAPE, frame_stack=K, num_envs=2, seed=0)
    for _ in range(3):
        rows = [envs.step(e, episode_ends=False) for e in (0, 1)]
        buf.add(
            np.stack([r[0] for r in rows]),
            [1, 2],
            [0.5, -1.0],
            np.stack([r[1] for r in rows]),
            [False, False],
            [False, False],
        )
    return envs, buf


def valid_rows(envs):
    """The next rows both envs would add, without advancing them."""
    obs = np.stack([envs.obs(e) for e in (0, 1)])
    new = np.full((2, 1, *FRAME), 9, dtype=np.uint8)
    next_obs = np.concatenate([obs[:, 1:], new], axis=1)
    return dict(
        obs=obs,
        action=np.array([0, 1]),
        reward=np.array([0.0, 1.0], dtype=np.float32),
        next_obs=next_obs,
        terminated=np.array([False, False]),
        truncated=np.array([False, False]),
    )


def snapshot(buf):
    return len(buf), buf.nbytes, buf.get(torch.arange(len(buf)))


def assert_unchanged(buf, envs, before):
    length, nbytes, batch = before
    assert len(buf) == length and buf.nbytes == nbytes
    assert_same_batch(buf.get(torch.arange(length)), batch)
    buf.add(**valid_rows(envs))  # the episodes still continue from their last next_obs
    assert len(buf) == length + 2


def bad(rows, **changes):
    return {**rows, **changes}


ADD_CASES = [
    ("obs", lambda r: bad(r, obs=r["obs"][:, :, :5]), ValueError, "obs: expected shape (2, 4, 6, 6)"),
    ("obs", lambda r: bad(r, obs=r["obs"][0]), ValueError, "obs: expected shape"),
    ("obs", lambda r: bad(r, obs=r["obs"].astype(np.float32)), TypeError, "obs: expected dtype torch.uint8"),
    ("next_obs", lambda r: bad(r, next_obs=r["next_obs"][:1]), ValueError, "next_obs: expected shape"),
    ("action", lambda r: bad(r, action=np.array([0.0, 1.0])), TypeError, "action: expected an integer"),
    ("action", lambda r: bad(r, action=np.array([True, False])), TypeError, "action: expected an integer"),
    (
        "action",
        lambda r: bad(r, action=np.array([0, 2**40])),
        ValueError,
        "action: expected values in the int32",
    ),
    ("action", lambda r: bad(r, action=np.array([0])), ValueError, "action: expected shape (2,)"),
    ("action", lambda r: bad(r, action=["left", "right"]), TypeError, "action: expected a numpy array"),
    (
        "action",
        lambda r: bad(r, action=torch.tensor([0, 1]).to_sparse()),
        TypeError,
        "action: expected a dense tensor",
    ),
    (
        "action",
        lambda r: bad(r, action=np.array([object(), 1])),
        TypeError,
        "action: expected a numpy array or torch tensor of numbers",
    ),
    (
        "action",
        lambda r: bad(r, action=np.array([0, 1], dtype=np.uint64)),
        TypeError,
        "action: expected an integer dtype, got torch.uint64",
    ),
    (
        "reward",
        lambda r: bad(r, reward=torch.zeros(2, dtype=torch.float8_e4m3fn)),
        TypeError,
        "reward: expected a real dtype",
    ),
    ("reward", lambda r: bad(r, reward=np.array([0.0, np.nan])), ValueError, "reward: expected finite"),
    ("reward", lambda r: bad(r, reward=np.array([np.inf, 0.0])), ValueError, "reward: expected finite"),
    (
        "reward",
        lambda r: bad(r, reward=np.array([1e300, 0.0])),
        ValueError,
        "got 1e+300 at row 0 (infinite as float32)",
    ),
    ("reward", lambda r: bad(r, reward=np.array([[0.0, 1.0]])), ValueError, "reward: expected shape (2,)"),
    (
        "terminated",
        lambda r: bad(r, terminated=np.array([0, 1])),
        TypeError,
        "terminated: expected torch.bool",
    ),
    (
        "truncated",
        lambda r: bad(r, truncated=np.array([False])),
        ValueError,
        "truncated: expected shape (2,)",
    ),
]


@pytest.mark.parametrize(
    "arg,make,error,message", ADD_CASES, ids=[c[0] + str(i) for i, c in enumerate(ADD_CASES)]
)
def test_bad_add_arguments(setup, arg, make, error, message):
    envs, buf = setup
    before = snapshot(buf)
    with pytest.raises(error, match=None) as info:
        buf.add(**make(valid_rows(envs)))
    assert message in str(info.value), str(info.value)
    assert_unchanged(buf, envs, before)


@pytest.mark.parametrize(
    "env_ids,error,message",
    [
        ([0, 2], ValueError, "env_ids: expected values in [0, 2), got 2"),
        ([-1, 0], ValueError, "env_ids: expected values in [0, 2), got -1"),
        ([1, 1], ValueError, "env_ids: each env may appear once per add"),
        ([0], ValueError, "obs: expected shape (1, 4, 6, 6)"),
        ([0.0, 1.0], TypeError, "env_ids: expected integers, got torch.float"),
    ],
)
def test_bad_env_ids(setup, env_ids, error, message):
    envs, buf = setup
    before = snapshot(buf)
    with pytest.raises(error) as info:
        buf.add(**valid_rows(envs), env_ids=env_ids)
    assert message in str(info.value), str(info.value)
    assert_unchanged(buf, envs, before)


def test_next_obs_that_does_not_shift_names_env_and_step(setup):
    envs, buf = setup
    before = snapshot(buf)
    rows = valid_rows(envs)
    rows["next_obs"][1, 0] += 1
    with pytest.raises(ValueError, match=r"env 1, episode step 3: next_obs frame 0 differs from obs frame 1"):
        buf.add(**rows)
    assert_unchanged(buf, envs, before)


def test_obs_that_does_not_continue_the_episode_names_env_and_step(setup):
    envs, buf = setup
    before = snapshot(buf)
    rows = valid_rows(envs)
    rows["obs"][0, 2] += 1
    rows["next_obs"][0, 1] += 1  # keep the shift itself consistent
    with pytest.raises(
        ValueError,
        match=r"env 0, episode step 3: obs differs from the next_obs of this "
        r"env's previous transition \(frame 2 of 4\)",
    ):
        buf.add(**rows)
    assert_unchanged(buf, envs, before)


def test_a_new_episode_may_start_from_any_obs_after_an_end(setup):
    envs, buf = setup
    rows = valid_rows(envs)
    rows["truncated"] = np.array([True, False])
    buf.add(**rows)
    fresh = StackedEnvs(1, FRAME, K, torch.uint8, seed=99)
    obs, next_obs = fresh.step(0, episode_ends=False)
    slot = buf.add(obs[None], [0], [0.0], next_obs[None], [False], [False], env_ids=[0])
    assert torch.equal(buf.get(slot).obs[0], torch.from_numpy(obs))


@pytest.mark.parametrize(
    "batch_size,error",
    [(0, ValueError), (-3, ValueError), (1.5, TypeError), (True, TypeError), ("32", TypeError)],
)
def test_bad_batch_size(setup, batch_size, error):
    _, buf = setup
    with pytest.raises(error, match="batch_size"):
        buf.sample(batch_size)


def test_sampling_an_empty_buffer():
    buf = pydqn.ReplayBuffer(4, (3,))
    with pytest.raises(ValueError, match="cannot sample from an empty buffer"):
        buf.sample(1)


def test_get_out_of_range_and_bad_dtype(setup):
    _, buf = setup
    with pytest.raises(
        IndexError, match=r"indices: slot 6 at position 1 is out of range; the buffer holds 6"
    ):
        buf.get([0, 6])
    with pytest.raises(IndexError, match="slot -1"):
        buf.get(-1)
    with pytest.raises(TypeError, match="indices: expected integers"):
        buf.get([0.5])


def test_bad_out_batch(setup):
    _, buf = setup
    good = buf.sample(4)
    with pytest.raises(ValueError, match=r"out.obs: expected shape \(4, 4, 6, 6\)"):
        buf.sample(4, out=good._replace(obs=torch.empty(4, 4, 6, 5, dtype=torch.uint8)))
    with pytest.raises(TypeError, match=r"out\.reward: expected dtype torch\.float32, got torch\.float64"):
        buf.sample(4, out=good._replace(reward=torch.empty(4, dtype=torch.float64)))
    with pytest.raises(ValueError, match=r"out\.action: expected a contiguous tensor on cpu"):
        buf.sample(4, out=good._replace(action=torch.empty(8, dtype=torch.int64)[::2]))
    with pytest.raises(ValueError, match="out: expected a Batch of 5 rows"):
        buf.sample(5, out=good)


CONSTRUCTOR_CASES = [
    (dict(capacity=0), ValueError, "capacity: expected an int >= 1, got 0"),
    (dict(capacity=-5), ValueError, "capacity: expected an int >= 1"),
    (dict(capacity=10.0), TypeError, "capacity: expected an int"),
    (dict(obs_shape=(4, 0, 84)), ValueError, "obs_shape[1]: expected an int >= 1, got 0"),
    (dict(obs_shape="84x84"), TypeError, "obs_shape: expected a tuple of ints"),
    (dict(frame_stack=0), ValueError, "frame_stack: expected an int in [1, 32], got 0"),
    (dict(num_envs=0), ValueError, "num_envs: expected an int in [1, 65536], got 0"),
    (dict(obs_dtype="uint8"), TypeError, "obs_dtype: expected a torch.dtype"),
    (dict(obs_dtype=torch.complex64), TypeError, "obs_dtype: expected a standard integer, floating point"),
    (dict(obs_dtype=torch.qint8), TypeError, "obs_dtype: expected a standard integer, floating point"),
    (dict(device="mps"), ValueError, "device: expected 'cpu'"),
    (dict(device="gpu0"), ValueError, "device: expected 'cpu' or a torch.device"),
    (dict(seed=-1), ValueError, "seed: expected an int in [0, 18446744073709551615], got -1"),
    (
        dict(obs_shape=np.array([[4, 84, 84]])),
        TypeError,
        "obs_shape: expected a 1-D sequence of ints, got an array of shape (1, 3)",
    ),
    (dict(obs_shape=np.array([4.0, 84.0, 84.0])), TypeError, "obs_shape[0]: expected an int, got float 4.0"),
    (dict(obs_shape=np.array([4, -84, 84])), ValueError, "obs_shape[1]: expected an int >= 1, got -84"),
]
# Limits of the frame layout, which the pure-Python buffer (whole observations) does not have.
FRAME_LAYOUT_CASES = [
    (
        dict(frame_stack=3),
        ValueError,
        "obs_shape: axis 0 holds the stacked frames, so it must equal frame_stack=3",
    ),
    (dict(capacity=2**40), ValueError, "exceed the 2^31 frame ids"),
    (dict(capacity=2**62), ValueError, "exceed the 2^31 frame ids"),
    (dict(obs_shape=(2**32, 2**32), frame_stack=1), ValueError, "holds more than 2^40 elements"),
    (dict(obs_dtype=torch.qint8, frame_stack=1, obs_shape=(3,)), TypeError, "obs_dtype"),
]


def check_constructor_error(cls, kwargs, error, message):
    args = {"capacity": 10, "obs_shape": (4, 84, 84), "frame_stack": 4, **kwargs}
    with pytest.raises(error) as info:
        cls(**args)
    assert message in str(info.value), str(info.value)


@pytest.mark.parametrize("kwargs,error,message", CONSTRUCTOR_CASES)
@pytest.mark.parametrize("cls", [pydqn.ReplayBuffer, pydqn.PyReplayBuffer])
def test_bad_constructor_arguments(cls, kwargs, error, message):
    check_constructor_error(cls, kwargs, error, message)


@pytest.mark.parametrize("kwargs,error,message", FRAME_LAYOUT_CASES)
def test_frame_layout_limits(kwargs, error, message):
    check_constructor_error(pydqn.ReplayBuffer, kwargs, error, message)


def test_the_extension_exports_the_limits_it_enforces():
    limits = pydqn.replay.buffer._C.LIMITS
    assert limits == {
        "frame_stack": 32,
        "num_envs": 65536,
        "n_step": 64,
        "capacity": 2**31 - 1,
        "added": 2**60,  # a loaded state's count; tests/replay/test_state_validation.py enforces it
    }

    def make(capacity=64, frame_stack=1, num_envs=1, n_step=1):
        return pydqn.replay.buffer._C.ReplayBuffer(
            capacity, [frame_stack, 2], torch.uint8, frame_stack, num_envs, 0, n_step, 0.99, False, 0.6
        )

    for name in ("frame_stack", "num_envs", "n_step"):
        make(**{name: limits[name]})  # inclusive
        with pytest.raises(ValueError, match=f"{name}: expected 1..{limits[name]}, got {limits[name] + 1}"):
            make(**{name: limits[name] + 1})
    with pytest.raises(ValueError, match="capacity: 2147483648 transitions of 2 frames exceed"):
        make(capacity=limits["capacity"] + 1)


@pytest.mark.parametrize("name", ["frame_stack", "num_envs", "n_step"])
@pytest.mark.parametrize("cls", [pydqn.ReplayBuffer, pydqn.PyReplayBuffer])
def test_both_buffers_check_the_extensions_limits(cls, name):
    limit = pydqn.replay.buffer._C.LIMITS[name]
    message = f"{name}: expected an int in [1, {limit}], got {limit + 1}"
    check_constructor_error(cls, {name: limit + 1}, ValueError, message)


@pytest.mark.parametrize("cls", [pydqn.ReplayBuffer, pydqn.PyReplayBuffer])
@pytest.mark.parametrize(
    "obs_shape,frame_stack,expected",
    [
        (np.array([4, 84, 84]), 4, (4, 84, 84)),
        (np.array([3], dtype=np.int32), 1, (3,)),
        (np.array(7), 1, (7,)),
    ],
)
def test_an_obs_shape_given_as_a_numpy_array_is_its_ints(cls, obs_shape, frame_stack, expected):
    buf = cls(10, obs_shape, frame_stack=frame_stack)
    assert buf.obs_shape == expected and all(type(d) is int for d in buf.obs_shape)
    obs = np.zeros((1, *expected), dtype=np.uint8)
    buf.add(obs, [0], [0.0], obs, [True], [False])
    assert buf.sample(2).obs.shape == (2, *expected)


# ---- meta tensors, byte-swapped arrays, overlapping out=, absurd sizes ------------------------------


def assert_nothing_changed(buf, envs, state_before, before):
    """The refused call left the buffer's state (the generator's position too) as it was, and the
    buffer still adds and samples."""
    assert_same_state(buf.state_dict(), state_before)
    assert_unchanged(buf, envs, before)
    buf.sample(4, beta=0.4 if buf.prioritized else None)


@pytest.mark.parametrize("arg", ["obs", "action", "reward", "next_obs", "terminated", "truncated", "env_ids"])
def test_a_meta_tensor_given_to_add_is_refused(setup, arg):
    envs, buf = setup
    state, before = buf.state_dict(), snapshot(buf)
    rows = {**valid_rows(envs), "env_ids": np.array([0, 1])}
    rows[arg] = torch.as_tensor(rows[arg]).to("meta")
    with pytest.raises(ValueError) as info:
        buf.add(**rows)
    assert f"{arg}: expected a tensor with values, got a meta tensor" in str(info.value), str(info.value)
    assert_nothing_changed(buf, envs, state, before)


@pytest.fixture
def prioritized_setup():
    envs = StackedEnvs(2, FRAME, K, torch.uint8, seed=7)
    buf = pydqn.ReplayBuffer(8, OBS_SHAPE, frame_stack=K, num_envs=2, seed=0, prioritized=True)
    for _ in range(3):
        rows = valid_rows(envs)
        buf.add(**rows)
        for e in (0, 1):
            envs.stacks[e] = rows["next_obs"][e]
    return envs, buf


@pytest.mark.parametrize(
    "call,arg",
    [
        (lambda buf: buf.get(torch.zeros(2, dtype=torch.long, device="meta")), "indices"),
        (
            lambda buf: buf.update_priorities(torch.tensor([0, 1], device="meta"), [1.0, 2.0]),
            "transition_ids",
        ),
        (lambda buf: buf.update_priorities([0, 1], torch.ones(2, device="meta")), "priorities"),
        (
            lambda buf: buf.sample(4, out=buf.sample(4)._replace(weights=torch.ones(4, device="meta"))),
            "out.weights",
        ),
    ],
)
def test_a_meta_tensor_given_to_get_update_priorities_or_out_is_refused(prioritized_setup, call, arg):
    envs, buf = prioritized_setup
    state, before = buf.state_dict(), snapshot(buf)
    with pytest.raises(ValueError) as info:
        call(buf)
    assert str(info.value).startswith(f"{arg}: expected a "), str(info.value)
    assert "meta" in str(info.value)
    if arg != "out.weights":  # sample() itself moved the generator
        assert_nothing_changed(buf, envs, state, before)


@pytest.mark.parametrize("dtype", [">i8", ">i4", "<i2"])
def test_byte_swapped_indices_read_as_their_values(setup, dtype):
    _, buf = setup
    slots = [0, 3, 5, 3]
    swapped = np.array(slots, dtype=np.dtype(dtype).newbyteorder(">"))
    assert not swapped.dtype.isnative
    assert_same_batch(buf.get(swapped), buf.get(torch.tensor(slots)))


def test_byte_swapped_transition_ids_and_priorities_apply_as_their_values(prioritized_setup):
    _, buf = prioritized_setup
    twin = pydqn.ReplayBuffer(8, OBS_SHAPE, frame_stack=K, num_envs=2, seed=0, prioritized=True)
    twin.load_state_dict(buf.state_dict())
    ids, priorities = [1, 4, 5], [0.5, 2.0, 7.25]
    applied = buf.update_priorities(np.array(ids, dtype=">i8"), np.array(priorities, dtype=">f8"))
    assert applied == twin.update_priorities(ids, priorities) == 3
    assert_same_state(buf.state_dict(), twin.state_dict())


def overlapping(out, field_a, field_b):
    """`out` with fields a and b made to share memory: b's tensor starts inside a's.

    The shared bytes are all 0x01 (not torch.empty's leftovers): read as a float they are never NaN,
    so `torch.equal` can tell whether the refused call wrote anything.
    """
    a, b = getattr(out, field_a), getattr(out, field_b)
    if a.dtype == b.dtype:
        b_start = (b.numel() // 2) * b.element_size()
    else:
        b_start = a.nbytes - max(a.element_size(), b.element_size())
    base = torch.ones(max(a.nbytes, b_start + b.nbytes), dtype=torch.uint8)
    view = lambda t, start: base[start : start + t.nbytes].view(t.dtype).view(t.shape)
    return out._replace(**{field_a: view(a, 0), field_b: view(b, b_start)})


OVERLAP_CASES = [
    ("obs", "next_obs"),
    ("reward", "weights"),
    ("discount", "weights"),
    ("indices", "transition_ids"),
    ("action", "indices"),
    ("terminated", "truncated"),
    ("reward", "indices"),  # different dtypes: bytes of one are bytes of the other
    ("next_obs", "terminated"),
]


@pytest.mark.parametrize("field_a,field_b", OVERLAP_CASES)
def test_an_out_batch_whose_fields_share_memory_is_refused(setup, field_a, field_b):
    envs, buf = setup
    out = overlapping(buf.sample(4), field_a, field_b)
    written = [t.clone() for t in out]
    state, before = buf.state_dict(), snapshot(buf)
    with pytest.raises(ValueError) as info:
        buf.sample(4, out=out)
    assert f"out: {field_a} and {field_b} must not share memory" in str(info.value), str(info.value)
    assert all(torch.equal(t, w) for t, w in zip(out, written, strict=True))  # nothing written
    assert_nothing_changed(buf, envs, state, before)
    assert buf.sample(4, out=buf.sample(4)).indices.shape == (4,)


@pytest.mark.parametrize(
    "batch_size,error,message",
    [
        (
            10**12,
            MemoryError,
            "batch_size: a batch of 1000000000000 rows needs 326000000000000 bytes on cpu "
            "(obs and next_obs 144000000000000 each), and allocating them failed",
        ),
        (
            10**17,
            ValueError,
            "batch_size: a batch of 100000000000000000 rows is too large: "
            "its tensors would hold more than 2^63 bytes",
        ),
        (
            2**63,
            ValueError,
            "batch_size: expected an int in [1, 9223372036854775807], got 9223372036854775808",
        ),
    ],
)
def test_an_absurd_batch_size_says_how_many_bytes_and_changes_nothing(setup, batch_size, error, message):
    envs, buf = setup
    state, before = buf.state_dict(), snapshot(buf)
    with pytest.raises(error) as info:
        buf.sample(batch_size)
    assert message in str(info.value), str(info.value)
    assert_nothing_changed(buf, envs, state, before)


@pytest.mark.skipif(
    any(s in os.environ.get("LD_PRELOAD", "") for s in ("asan", "tsan")),
    reason="a sanitizer's shadow memory does not fit under an address-space limit",
)
def test_a_capacity_whose_records_cannot_be_allocated_is_a_memory_error(tmp_path):
    """Under an address-space limit (in a subprocess) that a 2^29-slot ring does not fit in."""
    code = textwrap.dedent(
        """
        import resource, pydqn, torch
        used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + (2 << 30), resource.RLIM_INFINITY))
        for prioritized in (False, True):
            try:
                pydqn.ReplayBuffer(2**29, (1,), prioritized=prioritized)
            except MemoryError as error:
                print(error)
        buf = pydqn.ReplayBuffer(10, (1,))  # the process goes on as before
        one = torch.ones(1, 1, dtype=torch.uint8)
        buf.add(one, [0], [0.0], one, [True], [False])
        print(len(buf))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "capacity: 536870912 transitions need 13421772800 bytes of transition records up front, and "
        "allocating them failed",
        "capacity: 536870912 transitions need 30601641984 bytes of transition records and priority "
        "trees up front, and allocating them failed",
        "1",
    ]
