"""Calling ReplayBuffer.add: positional and keyword forms, argument errors as a Python method's,
subclasses that override it, and returned slot tensors that stay the caller's."""

import weakref

import numpy as np
import pytest
import torch
from streams import StackedEnvs

import pydqn

K, FRAME = 4, (3, 3)
FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")


def make(cls=pydqn.ReplayBuffer, num_envs=2):
    return cls(64, (K, *FRAME), frame_stack=K, num_envs=num_envs, seed=0)


def step(envs, env_ids=(0, 1)):
    """The next rows of `env_ids`, as add()'s keyword arguments."""
    rows = [envs.step(e, episode_ends=False) for e in env_ids]
    n = len(env_ids)
    return {
        "obs": np.stack([r[0] for r in rows]),
        "action": np.arange(n),
        "reward": np.full(n, 0.5, dtype=np.float32),
        "next_obs": np.stack([r[1] for r in rows]),
        "terminated": np.zeros(n, bool),
        "truncated": np.zeros(n, bool),
    }


def test_positional_keyword_and_mixed_calls_store_the_same():
    buffers = [make() for _ in range(4)]
    streams = [StackedEnvs(2, FRAME, K, torch.uint8, seed=1) for _ in buffers]
    for _ in range(3):
        calls = [
            lambda b, r: b.add(*(r[f] for f in FIELDS)),
            lambda b, r: b.add(**r, env_ids=[0, 1]),
            lambda b, r: b.add(
                r["obs"],
                r["action"],
                reward=r["reward"],
                next_obs=r["next_obs"],
                truncated=r["truncated"],
                terminated=r["terminated"],
                env_ids=None,
            ),
            lambda b, r: b.add(*(r[f] for f in FIELDS), np.array([0, 1])),
        ]
        slots = [call(b, step(s)) for call, b, s in zip(calls, buffers, streams, strict=True)]
        assert all(torch.equal(s, slots[0]) for s in slots)
    stored = [b.get(torch.arange(len(b))) for b in buffers]
    for batch in stored[1:]:
        assert all(torch.equal(x, y) for x, y in zip(batch, stored[0], strict=True))


@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda b, r: b.add(*(r[f] for f in FIELDS), None, None),
            "add() takes at most 7 arguments (8 given)",
        ),
        (lambda b, r: b.add(**r, env_id=[0, 1]), "add() got an unexpected keyword argument 'env_id'"),
        (lambda b, r: b.add(r["obs"], **r), "add() got multiple values for argument 'obs'"),
        (
            lambda b, r: b.add(r["obs"], r["action"], r["reward"]),
            "add() missing required argument 'next_obs'",
        ),
        (
            lambda b, r: b.add(**{k: v for k, v in r.items() if k != "truncated"}),
            "add() missing required argument 'truncated'",
        ),
    ],
)
def test_argument_errors_are_type_errors_and_store_nothing(call, message):
    buf, envs = make(), StackedEnvs(2, FRAME, K, torch.uint8, seed=2)
    rows = step(envs)
    with pytest.raises(TypeError) as info:
        call(buf, rows)
    assert message in str(info.value), str(info.value)
    assert len(buf) == 0
    assert buf.add(**rows).tolist() == [0, 1]


def test_keywords_built_at_run_time_match():
    """Keyword names that are not interned strings (built from pieces) still match."""
    buf, envs = make(), StackedEnvs(2, FRAME, K, torch.uint8, seed=3)
    rows = {"".join(list(name)): value for name, value in step(envs).items()}
    assert buf.add(**rows).tolist() == [0, 1]


def test_a_subclass_that_overrides_add_is_called():
    class Counting(pydqn.ReplayBuffer):
        calls = 0

        def add(self, *args, **kwargs):
            self.calls += 1
            return super().add(*args, **kwargs)

    buf, envs = make(Counting), StackedEnvs(2, FRAME, K, torch.uint8, seed=4)
    assert buf.add(**step(envs)).tolist() == [0, 1]
    assert buf.add(**step(envs, (1, 0)), env_ids=[1, 0]).tolist() == [2, 3]
    assert buf.calls == 2 and len(buf) == 4


KEEPS = {
    "tensor": lambda slots: slots,
    "view": lambda slots: slots[:],
    "numpy": lambda slots: slots.numpy(),
    "storage": lambda slots: slots.untyped_storage(),
    "dlpack": lambda slots: torch.utils.dlpack.to_dlpack(slots),
    "weakref": lambda slots: weakref.ref(slots),
}


def read(kept, keep):
    if keep == "storage":
        return torch.tensor([], dtype=torch.int64).set_(kept).tolist()
    if keep == "dlpack":
        return torch.utils.dlpack.from_dlpack(kept).tolist()
    if keep == "weakref":
        return kept().tolist() if kept() is not None else None
    return kept.tolist()


@pytest.mark.parametrize("keep", list(KEEPS))
def test_returned_slots_are_never_rewritten_while_reachable(keep):
    """add() may hand out a slots tensor again once its caller let go of it; never before."""
    buf, envs = make(), StackedEnvs(2, FRAME, K, torch.uint8, seed=5)
    kept = []
    for n in range(12):
        slots = buf.add(**step(envs))
        assert slots.dtype == torch.int64 and slots.tolist() == [2 * n, 2 * n + 1]
        if n % 3 == 0:
            kept.append((KEEPS[keep](slots), slots.tolist()))
        del slots
    for value, expected in kept:
        seen = read(value, keep)
        assert seen == expected or (keep == "weakref" and seen is None)  # dead is fine, changed not


def test_a_dropped_slots_tensor_is_handed_out_again():
    """The reuse the test above guards, which saves add() an allocation, does happen."""
    buf, envs = make(), StackedEnvs(2, FRAME, K, torch.uint8, seed=8)
    first = id(buf.add(**step(envs)))
    assert id(buf.add(**step(envs))) == first


def test_a_tensor_the_caller_marked_is_not_handed_out_again():
    buf, envs = make(), StackedEnvs(2, FRAME, K, torch.uint8, seed=6)
    slots = buf.add(**step(envs))
    slots.note = "mine"
    watcher = weakref.ref(slots)
    del slots
    later = buf.add(**step(envs))
    assert not hasattr(later, "note") and later.tolist() == [2, 3]
    alive = watcher()
    assert alive is None or alive.tolist() == [0, 1]
    later.add_(10)  # changed in place, then dropped: the next add returns version 0 and its slots
    del later
    again = buf.add(**step(envs))
    assert again.tolist() == [4, 5] and again._version == 0


def test_inference_mode_is_the_callers():
    buf, envs = make(), StackedEnvs(2, FRAME, K, torch.uint8, seed=7)
    assert not buf.add(**step(envs)).is_inference()
    with torch.inference_mode():
        inside = buf.add(**step(envs))
        assert inside.is_inference() and inside.tolist() == [2, 3]
    outside = buf.add(**step(envs))
    assert not outside.is_inference() and outside.tolist() == [4, 5]
    assert inside.tolist() == [2, 3]
