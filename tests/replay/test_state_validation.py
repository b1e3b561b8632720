"""load_state_dict checks a state completely before it changes anything: every field with a wrong
type, shape, dtype or device, an out-of-range value, a missing or an extra key is refused with an
error naming the field, and the refused buffer is exactly as it was and still loads its own valid
state. Counters at their bounds load and keep working; the calls that used to hang run in a
subprocess under a timeout, so a regression fails instead of hanging the suite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from states import assert_same_state
from streams import StackedEnvs, assert_same_batch

import pydqn
from pydqn.replay.buffer import _C

CAPACITY, K, FRAME, NUM_ENVS = 10, 4, (3, 5), 2
MAX_ADDED = 2**60
KINDS: dict[str, dict[str, Any]] = {  # the buffers whose states are probed: each has fields the others lack
    "uniform": dict(n_step=1, prioritized=False),
    "nstep": dict(n_step=3, prioritized=False),
    "prioritized": dict(n_step=3, prioritized=True, alpha=1.0),
}


def make_buffer(kind: str, sampler: str = "host", seed: int | None = 0) -> pydqn.ReplayBuffer:
    return pydqn.ReplayBuffer(
        CAPACITY,
        (K, *FRAME),
        frame_stack=K,
        num_envs=NUM_ENVS,
        seed=seed,
        gamma=0.9,
        sampler=sampler,
        **KINDS[kind],
    )


def add_step(buf: pydqn.ReplayBuffer, envs: StackedEnvs, ends: bool) -> torch.Tensor:
    rows = [envs.step(e, episode_ends=ends) for e in range(NUM_ENVS)]
    return buf.add(
        np.stack([r[0] for r in rows]),
        np.arange(NUM_ENVS),
        np.array([0.5, -1.0], dtype=np.float32),
        np.stack([r[1] for r in rows]),
        np.full(NUM_ENVS, ends),
        np.zeros(NUM_ENVS, dtype=bool),
    )


def make_source(kind: str) -> pydqn.ReplayBuffer:
    """A full buffer whose stored windows (steps 7 to 11 of 2 envs) are complete without an
    episode end (step 7), complete with one (8 to 10), and open (11)."""
    buf = make_buffer(kind)
    envs = StackedEnvs(NUM_ENVS, FRAME, K, torch.uint8, seed=1)
    for step in range(12):
        add_step(buf, envs, ends=step in (3, 10))
    if buf.prioritized:
        batch = buf.sample(6, beta=0.4)
        buf.update_priorities(batch.transition_ids, torch.linspace(0.5, 3.0, 6))
    else:
        buf.sample(6)
    return buf


def copy_state(state: dict) -> dict:
    return {
        name: value.clone()
        if isinstance(value, torch.Tensor)
        else dict(value)
        if name == "settings"
        else value
        for name, value in state.items()
    }


def readable_slots(buf: pydqn.ReplayBuffer) -> torch.Tensor:
    """Every slot that get() reads: all stored ones but those whose n-step window is open."""
    state = buf.state_dict()
    first = state["added"] - len(buf)
    slots = torch.tensor([(first + i) % buf.capacity for i in range(len(buf))], dtype=torch.long)
    return slots if state["complete"] is None else slots[state["complete"]]


def snapshot(buf: pydqn.ReplayBuffer):
    slots = readable_slots(buf)
    return len(buf), buf.state_dict(), slots, buf.get(slots)


def assert_unchanged(buf: pydqn.ReplayBuffer, before) -> None:
    length, state, slots, batch = before
    assert len(buf) == length
    assert_same_state(buf.state_dict(), state)
    assert torch.equal(readable_slots(buf), slots)
    assert_same_batch(buf.get(slots), batch)


def assert_loads_and_works(buf: pydqn.ReplayBuffer, source: pydqn.ReplayBuffer) -> None:
    """`buf`, refused a bad state, still takes `source`'s and continues as a buffer that was never
    refused anything does (`twin`)."""
    state = source.state_dict()
    buf.load_state_dict(state)
    twin = make_buffer(
        "prioritized" if buf.prioritized else "nstep" if buf.n_step > 1 else "uniform", buf.sampler
    )
    twin.load_state_dict(state)
    assert_same_state(buf.state_dict(), state)
    slots = readable_slots(source)
    assert_same_batch(buf.get(slots), source.get(slots))
    beta = 0.4 if buf.prioritized else None
    assert_same_batch(buf.sample(8, beta=beta), source.sample(8, beta=beta))
    twin.sample(8, beta=beta)
    envs, twin_envs = (StackedEnvs(NUM_ENVS, FRAME, K, torch.uint8, seed=5) for _ in range(2))
    for ends in (False, True):
        assert torch.equal(add_step(buf, envs, ends), add_step(twin, twin_envs, ends))
    assert_same_state(buf.state_dict(), twin.state_dict())


def tensor(name: str, change):
    """A mutation that replaces state[name] by change(a clone of it)."""
    return lambda state: state.__setitem__(name, change(state[name].clone()))


def value(name: str, new):
    return lambda state: state.__setitem__(name, new)


def at_row(index, new):
    def change(t):
        t[index] = new
        return t

    return change


def bytes_of(new: int):
    """A bool tensor whose first byte is `new`, as a view of other bytes can hold."""
    return lambda t: torch.cat([torch.tensor([new], dtype=torch.uint8), t.view(torch.uint8)[1:]]).view(
        torch.bool
    )


def first_complete(state: dict, ended: bool) -> int:
    """A row whose window is complete, ended by an episode's end or not."""
    flags = state["window_terminated"] | state["window_truncated"]
    return int(torch.nonzero(state["complete"] & (flags == ended))[0])


def discount_at(ended: bool, new: float):
    def mutate(state):
        state["window_discount"] = state["window_discount"].clone()
        state["window_discount"][first_complete(state, ended)] = new

    return mutate


def window_ids_at(new: int):
    def mutate(state):
        state["window_ids"] = state["window_ids"].clone()
        state["window_ids"][first_complete(state, ended=False), 0] = new

    return mutate


def priority_of_open_window(state):
    state["priorities"] = state["priorities"].clone()
    state["priorities"][int(torch.nonzero(~state["complete"])[0])] = 1.0


def setting(name: str, new):
    return lambda state: state["settings"].__setitem__(name, new)


def drop_setting(name: str):
    return lambda state: state["settings"].pop(name)


def padded_frames(rows: int):
    return tensor("frames", lambda t: torch.cat([t, torch.zeros(rows, t.shape[1], dtype=torch.uint8)]))


FRAME_BYTES = FRAME[0] * FRAME[1]
# (kind, field, mutation, error, what the message says). Grouped by what is wrong.
STATE_CASES = [
    # Python types.
    (
        "uniform",
        "frames",
        tensor("frames", lambda t: t.numpy()),
        TypeError,
        "state['frames']: expected a torch.Tensor or None, as state_dict() saves it, got ndarray",
    ),
    (
        "uniform",
        "reward",
        tensor("reward", lambda t: t.tolist()),
        TypeError,
        "state['reward']: expected a torch.Tensor or None",
    ),
    ("uniform", "added", value("added", 24.0), TypeError, "state['added']: expected an int, got float 24.0"),
    ("uniform", "added", value("added", "24"), TypeError, "state['added']: expected an int, got str '24'"),
    ("uniform", "added", value("added", True), TypeError, "state['added']: expected an int, got bool True"),
    (
        "uniform",
        "rng_seed",
        value("rng_seed", 0.0),
        TypeError,
        "state['rng_seed']: expected an int, got float",
    ),
    (
        "uniform",
        "rng_draws",
        value("rng_draws", None),
        TypeError,
        "state['rng_draws']: expected an int, got NoneType",
    ),
    (
        "prioritized",
        "max_priority",
        value("max_priority", "2.0"),
        TypeError,
        "state['max_priority']: expected a float, got str '2.0'",
    ),
    (
        "prioritized",
        "max_priority",
        value("max_priority", True),
        TypeError,
        "state['max_priority']: expected a float, got bool",
    ),
    (
        "uniform",
        "settings",
        value("settings", [CAPACITY]),
        TypeError,
        "state['settings']: expected a dict, got list",
    ),
    (
        "uniform",
        "settings",
        setting("capacity", 11),
        ValueError,
        "state: saved from a buffer with capacity=11, this one has capacity=10",
    ),
    # Shapes, dtypes, devices, layouts.
    (
        "uniform",
        "frames",
        tensor("frames", lambda t: t.flatten()),
        ValueError,
        f"state['frames']: expected a (frames, {FRAME_BYTES}) uint8 tensor, got shape",
    ),
    (
        "uniform",
        "frames",
        tensor("frames", lambda t: t[:, :-1]),
        ValueError,
        f"state['frames']: expected shape [20, {FRAME_BYTES}], got [20, {FRAME_BYTES - 1}]",
    ),
    (
        "uniform",
        "frames",
        tensor("frames", lambda t: t.float()),
        TypeError,
        "state['frames']: expected dtype Byte, got Float",
    ),
    (
        "uniform",
        "frames",
        tensor("frames", lambda t: t.to("meta")),
        ValueError,
        "state['frames']: expected a CPU tensor, got one on meta (which holds no values)",
    ),
    (
        "uniform",
        "frames",
        value("frames", None),
        TypeError,
        f"state['frames']: expected a (frames, {FRAME_BYTES}) uint8 CPU tensor, got None",
    ),
    (
        "uniform",
        "frame_ids",
        tensor("frame_ids", lambda t: t.long()),
        TypeError,
        "state['frame_ids']: expected dtype Int, got Long",
    ),
    (
        "uniform",
        "frame_ids",
        tensor("frame_ids", lambda t: t[:, :K]),
        ValueError,
        "state['frame_ids']: expected shape [10, 5], got [10, 4]",
    ),
    (
        "uniform",
        "action",
        tensor("action", lambda t: t[:9]),
        ValueError,
        "state['action']: expected shape [10], got [9]",
    ),
    (
        "uniform",
        "action",
        value("action", None),
        TypeError,
        "state['action']: expected a CPU tensor of dtype Int and shape [10], got None",
    ),
    (
        "uniform",
        "reward",
        tensor("reward", lambda t: t.double()),
        TypeError,
        "state['reward']: expected dtype Float, got Double",
    ),
    (
        "uniform",
        "reward",
        tensor("reward", lambda t: t.to_sparse()),
        TypeError,
        "state['reward']: expected a dense tensor, got layout Sparse",
    ),
    (
        "uniform",
        "terminated",
        tensor("terminated", lambda t: t.to(torch.uint8)),
        TypeError,
        "state['terminated']: expected dtype Bool, got Byte",
    ),
    (
        "uniform",
        "truncated",
        tensor("truncated", lambda t: t.to("meta")),
        ValueError,
        "state['truncated']: expected a CPU tensor, got one on meta",
    ),
    (
        "nstep",
        "complete",
        tensor("complete", lambda t: t[:5]),
        ValueError,
        "state['complete']: expected shape [10], got [5]",
    ),
    (
        "nstep",
        "window_ids",
        tensor("window_ids", lambda t: t.short()),
        TypeError,
        "state['window_ids']: expected dtype Int, got Short",
    ),
    (
        "nstep",
        "window_discount",
        value("window_discount", None),
        TypeError,
        "state['window_discount']: expected a CPU tensor of dtype Float",
    ),
    (
        "nstep",
        "window_truncated",
        tensor("window_truncated", lambda t: t[None]),
        ValueError,
        "state['window_truncated']: expected shape [10], got [1, 10]",
    ),
    (
        "prioritized",
        "priorities",
        tensor("priorities", lambda t: t.float()),
        TypeError,
        "state['priorities']: expected dtype Double, got Float",
    ),
    (
        "prioritized",
        "priorities",
        value("priorities", None),
        TypeError,
        "state['priorities']: expected a CPU tensor of dtype Double and shape [10], got None",
    ),
    # Out-of-range values.
    (
        "uniform",
        "added",
        value("added", -1),
        ValueError,
        f"state['added']: expected an int in [0, {MAX_ADDED}], got -1",
    ),
    (
        "uniform",
        "added",
        value("added", MAX_ADDED + 1),
        ValueError,
        f"state['added']: expected an int in [0, {MAX_ADDED}], got {MAX_ADDED + 1}",
    ),
    (
        "uniform",
        "added",
        value("added", 2**64),
        ValueError,
        f"state['added']: expected an int in [0, {MAX_ADDED}], got {2**64}",
    ),
    (
        "uniform",
        "rng_seed",
        value("rng_seed", -1),
        ValueError,
        "state['rng_seed']: expected an int in [0, 18446744073709551615], got -1",
    ),
    (
        "uniform",
        "rng_draws",
        value("rng_draws", 2**64),
        ValueError,
        "state['rng_draws']: expected an int in [0, 18446744073709551615], got 18446744073709551616",
    ),
    (
        "uniform",
        "frames",
        padded_frames(1),
        ValueError,
        "state['frames']: row 20 of 21 is used by no transition in state['frame_ids']",
    ),
    (
        "uniform",
        "frames",
        padded_frames(100_000),
        ValueError,
        "state['frames']: row 20 of 100020 is used by no transition",
    ),
    (
        "uniform",
        "frame_ids",
        tensor("frame_ids", at_row((3, 2), 999)),
        ValueError,
        "state['frame_ids']: expected rows of state['frames'] in [0, 20), got 999 at row 3",
    ),
    (
        "uniform",
        "frame_ids",
        tensor("frame_ids", at_row((0, 0), -1)),
        ValueError,
        "state['frame_ids']: expected rows of state['frames'] in [0, 20), got -1 at row 0",
    ),
    (
        "uniform",
        "reward",
        tensor("reward", at_row(4, float("nan"))),
        ValueError,
        "state['reward']: expected finite values, got nan at row 4",
    ),
    (
        "uniform",
        "reward",
        tensor("reward", at_row(0, float("-inf"))),
        ValueError,
        "state['reward']: expected finite values, got -inf at row 0",
    ),
    (
        "uniform",
        "terminated",
        tensor("terminated", bytes_of(2)),
        ValueError,
        "state['terminated']: expected bools stored as 0 or 1, got byte 2 at row 0",
    ),
    (
        "nstep",
        "complete",
        tensor("complete", bytes_of(255)),
        ValueError,
        "state['complete']: expected bools stored as 0 or 1, got byte 255 at row 0",
    ),
    (
        "nstep",
        "window_terminated",
        tensor("window_terminated", bytes_of(3)),
        ValueError,
        "state['window_terminated']: expected bools stored as 0 or 1, got byte 3",
    ),
    (
        "nstep",
        "window_ids",
        window_ids_at(99),
        ValueError,
        "state['window_ids']: expected rows of state['frames'] in [0, ",
    ),
    (
        "nstep",
        "window_reward",
        tensor("window_reward", lambda t: torch.where(t != 0, float("inf"), t)),
        ValueError,
        "state['window_reward']: expected finite values, got inf",
    ),
    (
        "nstep",
        "window_discount",
        discount_at(ended=False, new=2.0),
        ValueError,
        "state['window_discount']: expected gamma^m for the window's m "
        "(1..n_step, gamma=0.9, n_step=3), got 2 at row",
    ),
    (
        "nstep",
        "window_discount",
        discount_at(ended=True, new=-0.5),
        ValueError,
        "state['window_discount']: expected gamma^m for the window's m "
        "(1..n_step, gamma=0.9, n_step=3), got -0.5",
    ),
    ("nstep", "window_discount", discount_at(ended=True, new=0.0), ValueError, "got 0 at row"),
    ("nstep", "window_discount", discount_at(ended=False, new=float("nan")), ValueError, "got nan at row"),
    # One float32 step off gamma^2 is a discount the buffer never computes. (gamma^2 itself is
    # valid with or without flags: end_episodes() ends an episode leaving its windows' flags clear.)
    (
        "nstep",
        "window_discount",
        discount_at(
            ended=False,
            new=float(np.nextafter(np.float32(0.9) * np.float32(0.9), np.float32(1), dtype=np.float32)),
        ),
        ValueError,
        "(1..n_step, gamma=0.9, n_step=3), got 0.81",
    ),
    (
        "prioritized",
        "priorities",
        tensor("priorities", at_row(2, float("nan"))),
        ValueError,
        "state['priorities']: expected a value in (0, ",
    ),
    (
        "prioritized",
        "priorities",
        tensor("priorities", lambda t: torch.where(t > 0, 1e308, t)),
        ValueError,
        "got 1e+308",
    ),
    ("prioritized", "priorities", priority_of_open_window, ValueError, "(its window is open) at row"),
    (
        "prioritized",
        "max_priority",
        value("max_priority", 0.0),
        ValueError,
        "state['max_priority']: expected a finite value > 0 whose ^alpha is at most",
    ),
    (
        "prioritized",
        "max_priority",
        value("max_priority", float("inf")),
        ValueError,
        "state['max_priority']: expected a finite value > 0",
    ),
    ("prioritized", "max_priority", value("max_priority", float("nan")), ValueError, "got nan"),
    (
        "prioritized",
        "max_priority",
        value("max_priority", 1e308),
        ValueError,
        "got 1e+308",
    ),  # alpha = 1: the sum overflows
    (
        "uniform",
        "max_priority",
        value("max_priority", 2.0),
        ValueError,
        "state['max_priority']: expected 1.0, as a uniform buffer saves it, got 2",
    ),
    # Missing and extra keys.
    (
        "prioritized",
        "max_priority",
        lambda state: state.pop("max_priority"),
        ValueError,
        "state: missing ['max_priority']",
    ),
    (
        "uniform",
        "settings",
        lambda state: state.pop("settings"),
        TypeError,
        "state: expected a dict from ReplayBuffer.state_dict(), got dict",
    ),
    ("uniform", "settings", drop_setting("gamma"), ValueError, "state['settings']: missing ['gamma']"),
    ("uniform", "settings", setting("device", "cpu"), ValueError, "state['settings']: unexpected ['device']"),
    ("uniform", "extra", value("frames_v2", torch.zeros(1)), ValueError, "state: unexpected ['frames_v2']"),
    (
        "uniform",
        "complete",
        value("complete", torch.ones(CAPACITY, dtype=torch.bool)),
        ValueError,
        "state['complete']: expected None, as a buffer with n_step=1 keeps no n-step windows, "
        "got a tensor of shape [10]",
    ),
    (
        "uniform",
        "window_reward",
        value("window_reward", torch.zeros(CAPACITY)),
        ValueError,
        "state['window_reward']: expected None, as a buffer with n_step=1",
    ),
    (
        "nstep",
        "priorities",
        value("priorities", torch.ones(CAPACITY, dtype=torch.float64)),
        ValueError,
        "state['priorities']: expected None, as a uniform buffer keeps no priorities",
    ),
]
STATE_CASES += [
    ("prioritized", name, lambda state, name=name: state.pop(name), ValueError, f"state: missing [{name!r}]")
    for name in _C.REPLAY_STATE_KEYS
]


@pytest.fixture(scope="module")
def sources():
    return {kind: make_source(kind) for kind in KINDS}


@pytest.mark.parametrize("sampler", ["host", "kernel"])
@pytest.mark.parametrize(
    "kind,field,mutate,error,message",
    STATE_CASES,
    ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(STATE_CASES)],
)
def test_a_bad_state_is_refused_and_changes_nothing(sources, sampler, kind, field, mutate, error, message):
    source = sources[kind]
    state = copy_state(source.state_dict())
    mutate(state)
    buf = make_buffer(kind, sampler, seed=3)
    before = snapshot(buf)
    with pytest.raises(error) as info:
        buf.load_state_dict(state)
    assert message in str(info.value), str(info.value)
    assert_unchanged(buf, before)
    assert_loads_and_works(buf, make_source(kind))


def test_the_cases_cover_every_field():
    covered = {case[1] for case in STATE_CASES}
    assert covered >= {*_C.REPLAY_STATE_KEYS, "settings"}


def test_a_state_refused_by_a_used_buffer_leaves_it_as_it_was(sources):
    buf = make_source("nstep")
    before = snapshot(buf)
    with pytest.raises(ValueError, match=r"expected a buffer nothing was added to, but it holds 10"):
        buf.load_state_dict(sources["nstep"].state_dict())
    assert_unchanged(buf, before)


def test_numpy_integers_and_floats_are_accepted_as_numbers(sources):
    state = sources["prioritized"].state_dict()
    numbers = {**state, "added": np.int64(state["added"]), "max_priority": np.float64(state["max_priority"])}
    buf = make_buffer("prioritized")
    buf.load_state_dict(numbers)
    assert_same_state(buf.state_dict(), state)


# ---- counters at their bounds, and the states that used to hang, in a subprocess ----------------

SANITIZED = any(s in os.environ.get("LD_PRELOAD", "") for s in ("asan", "tsan"))


def run_isolated(code: str, tmp_path: Path, timeout: float = 120) -> str:
    """Runs `code` in a fresh interpreter that has this module imported as `t`; returns its stdout.
    A call that spins forever fails the test after `timeout` seconds instead of hanging the suite."""
    here = Path(__file__).resolve().parent
    prelude = (
        f"import sys; sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]\n"
        "import test_state_validation as t\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", prelude + textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=timeout * (4 if SANITIZED else 1),
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout} s (the call hangs):\n{code}")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("added", [2**61, 2**62 - 1, 2**62, 2**63 - 1])
def test_a_transition_count_past_the_bound_is_refused_without_hanging(tmp_path, added):
    out = run_isolated(
        f"""
        import pytest, torch
        source = t.make_source("uniform")
        state = {{**source.state_dict(), "added": {added}}}
        buf = t.make_buffer("uniform")
        with pytest.raises(ValueError, match=r"state\\['added'\\]: expected an int in \\[0, {MAX_ADDED}\\]"):
            buf.load_state_dict(state)
        # The extension checks the same bound itself, below the Python facade.
        with pytest.raises(ValueError, match=r"state\\['added'\\]: expected an int in \\[0, {MAX_ADDED}\\]"):
            buf._impl.load_state({{k: v for k, v in state.items() if k != "settings"}})
        assert len(buf) == 0
        t.assert_loads_and_works(buf, source)
        print("refused")
        """,
        tmp_path,
    )
    assert out.strip() == "refused"


def test_a_transition_count_at_the_bound_loads_reads_samples_and_refuses_more_adds(tmp_path):
    out = run_isolated(
        f"""
        import pytest, torch
        for kind in t.KINDS:
            source = t.make_source(kind)
            state = source.state_dict()
            stored, added = len(source), state["added"]
            for count in ({MAX_ADDED}, {MAX_ADDED} - 2):
                buf = t.make_buffer(kind)
                buf.load_state_dict({{**state, "added": count}})
                # Transition i of the stored ones lives in slot (count - stored + i) % capacity.
                new_slots = torch.tensor([(count - stored + i) % t.CAPACITY for i in range(stored)])
                old_slots = torch.tensor([(added - stored + i) % t.CAPACITY for i in range(stored)])
                complete = state["complete"]
                if complete is None:
                    complete = torch.ones(stored, dtype=torch.bool)
                got, want = buf.get(new_slots[complete]), source.get(old_slots[complete])
                assert torch.equal(got.obs, want.obs) and torch.equal(got.next_obs, want.next_obs)
                assert torch.equal(got.transition_ids, torch.arange(count - stored, count)[complete])
                batch = buf.sample(16, beta=0.4 if buf.prioritized else None)
                assert bool(((batch.transition_ids >= count - stored) & (batch.transition_ids < count)).all())
                envs = t.StackedEnvs(t.NUM_ENVS, t.FRAME, t.K, torch.uint8, seed=9)
                if count < {MAX_ADDED}:
                    slots = t.add_step(buf, envs, ends=True)
                    assert slots.tolist() == [count % t.CAPACITY, (count + 1) % t.CAPACITY]
                    assert buf.get(slots).transition_ids.tolist() == [count, count + 1]
                before = t.snapshot(buf)
                refused = r"add: this buffer has numbered {MAX_ADDED} transitions, and 2 more would pass"
                with pytest.raises(ValueError, match=refused):
                    t.add_step(buf, envs, ends=True)
                t.assert_unchanged(buf, before)
        print("bounded")
        """,
        tmp_path,
    )
    assert out.strip() == "bounded"


MASK = 2**64 - 1


def splitmix_slot(seed: int, draw: int, stored: int) -> int:
    """The slot of draw `draw` of a uniform buffer holding `stored` sampleable transitions:
    SplitMix64 of seed + (draw + 1) * golden gamma, then Lemire's multiply-shift (counter_rng.h)."""
    z = (seed + ((draw + 1) & MASK) * 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^= z >> 31
    return (z * stored) >> 64


@pytest.mark.parametrize("sampler", ["host", "kernel"])
@pytest.mark.parametrize("seed,draws", [(MASK, MASK - 1), (MASK, MASK), (0, 2**63 - 1), (12345, 0)])
def test_the_generator_position_wraps_at_2_to_the_64_on_every_sampler(sources, sampler, seed, draws):
    state = {**sources["uniform"].state_dict(), "rng_seed": seed, "rng_draws": draws}
    buf = make_buffer("uniform", sampler)
    buf.load_state_dict(state)
    batch = buf.sample(4)
    # A full n = 1 ring: every slot is sampleable, so no row is redrawn.
    assert batch.indices.tolist() == [splitmix_slot(seed, (draws + r) & MASK, CAPACITY) for r in range(4)]
    assert buf.state_dict()["rng_draws"] == (draws + 4) & MASK
