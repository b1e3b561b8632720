"""The device sampler (``sampler="kernel"``: CUDA, and its CPU twin) returns, bit for bit, what
the host sampler returns for the same ``add`` calls: every slot's ``get`` and, with the same seed,
every ``sample`` batch. The host buffer is checked against the pure-Python oracle elsewhere."""

import threading
import time
from typing import Any

import numpy as np
import pytest
import torch
from conftest import cuda_ready
from hypothesis import given, settings
from hypothesis import strategies as st
from streams import PADDINGS, StackedEnvs, add_rows, draw_adds

import pydqn
from pydqn.replay.batch import Batch

KERNEL_DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def make_pair(envs: StackedEnvs, capacity: int, device: str, seed: int = 0, n_step: int = 1):
    args: dict[str, Any] = dict(
        capacity=capacity,
        obs_shape=envs.obs_shape,
        obs_dtype=envs.dtype,
        frame_stack=envs.k,
        num_envs=envs.num_envs,
        seed=seed,
        n_step=n_step,
    )
    return pydqn.ReplayBuffer(**args), pydqn.ReplayBuffer(**args, device=device, sampler="kernel")


def assert_same_bits(actual: Batch, expected: Batch, device: str) -> None:
    for name in expected._fields:
        a, e = getattr(actual, name), getattr(expected, name)
        assert a.device.type == device, (name, a.device)
        assert a.dtype == e.dtype and a.shape == e.shape, (name, a.dtype, e.dtype, a.shape, e.shape)
        assert torch.equal(a.cpu().contiguous().view(torch.uint8), e.contiguous().view(torch.uint8)), name


def sampleable_slots(host: pydqn.ReplayBuffer) -> list[int]:
    """Slots whose transitions can be read (n-step windows complete), as the host buffer says."""
    slots = []
    for slot in range(len(host)):
        try:
            host.get([slot])
        except ValueError:
            continue
        slots.append(slot)
    return slots


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@settings(max_examples=min(40, settings().max_examples))  # fewer under the "few" profile
@given(
    capacity=st.integers(1, 40),
    k=st.sampled_from([1, 4]),
    num_envs=st.integers(1, 3),
    n_step=st.sampled_from([1, 3]),
    dtype=st.sampled_from([torch.uint8, torch.float32]),
    padding=st.sampled_from(PADDINGS),
    repeat_prob=st.sampled_from([0.0, 0.5]),
    data=st.data(),
)
def test_kernel_sampler_matches_host_bit_for_bit(
    device, capacity, k, num_envs, n_step, dtype, padding, repeat_prob, data
):
    seed = data.draw(st.integers(0, 2**16), label="seed")
    capacity = max(capacity, 2 * num_envs * (n_step - 1) + 1)  # the kernel sampler's minimum
    envs = StackedEnvs(num_envs, (3, 5), k, dtype, padding, repeat_prob, seed=seed)
    host, kernel = make_pair(envs, capacity, device, seed=seed, n_step=n_step)
    rng = np.random.default_rng(seed)
    for env_ids, ends in draw_adds(data, num_envs, capacity):
        host_slots, kernel_slots = add_rows([host, kernel], envs, env_ids, ends, rng)
        assert torch.equal(host_slots, kernel_slots)
        readable = sampleable_slots(host)
        if readable:
            assert_same_bits(kernel.get(readable), host.get(readable), device)
            assert_same_bits(kernel.sample(5), host.sample(5), device)
    assert len(kernel) == len(host)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("n_step", [1, 3])
def test_states_move_between_samplers(device, n_step):
    envs = StackedEnvs(2, (4, 4), 4, torch.uint8, "distinct", repeat_prob=0.2, seed=1)
    host, kernel = make_pair(envs, 24, device, seed=5, n_step=n_step)
    rng = np.random.default_rng(1)
    for step in range(60):
        add_rows([host, kernel], envs, [0, 1], ["terminated" if step % 13 == 12 else "run", "run"], rng)
        if step % 10 == 9:
            host.sample(3), kernel.sample(3)
    state = kernel.state_dict()
    assert state["rng_draws"] == host.state_dict()["rng_draws"] == 18
    for source in (state, host.state_dict()):
        _, restored = make_pair(envs, 24, device, seed=99, n_step=n_step)
        restored.load_state_dict(source)
        reference, _ = make_pair(envs, 24, device, seed=99, n_step=n_step)
        reference.load_state_dict(source)
        slots = sampleable_slots(reference)
        assert_same_bits(restored.get(slots), reference.get(slots), device)
        for _ in range(3):
            assert_same_bits(restored.sample(8), reference.sample(8), device)
            assert_same_bits(kernel.sample(8), host.sample(8), device)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("n_step", [1, 3])
def test_prioritized_batches_match_host_bit_for_bit(device, n_step):
    # Drawn on the host from the same trees, gathered on the device: the same rows and weights.
    envs = StackedEnvs(3, (5, 5), 4, torch.uint8, "distinct", repeat_prob=0.1, seed=11)
    args: dict[str, Any] = dict(
        capacity=50,
        obs_shape=envs.obs_shape,
        frame_stack=4,
        num_envs=3,
        seed=11,
        n_step=n_step,
        prioritized=True,
        alpha=0.7,
    )
    host = pydqn.ReplayBuffer(**args)
    kernel = pydqn.ReplayBuffer(**args, device=device, sampler="kernel")
    rng = np.random.default_rng(11)
    for step in range(80):
        add_rows([host, kernel], envs, [0, 1, 2], ["terminated" if step % 11 == 10 else "run"] * 3, rng)
        if step > 5:
            batch = host.sample(16, beta=0.5)
            assert_same_bits(kernel.sample(16, beta=0.5), batch, device)
            priorities = torch.from_numpy(rng.uniform(0.1, 5.0, 16))
            assert host.update_priorities(batch.transition_ids, priorities) == kernel.update_priorities(
                batch.transition_ids.to(device), priorities.to(device)
            )
    restored = pydqn.ReplayBuffer(**args, device=device, sampler="kernel")
    restored.load_state_dict(host.state_dict())
    assert_same_bits(restored.sample(32, beta=1.0), host.sample(32, beta=1.0), device)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_sample_into_writes_the_batch_in_place(device):
    envs = StackedEnvs(1, (2, 3), 4, torch.float32, "zeros", seed=2)
    host, kernel = make_pair(envs, 16, device, seed=4)
    rng = np.random.default_rng(2)
    for _ in range(20):
        add_rows([host, kernel], envs, [0], ["run"], rng)
    out = Batch(*(t.to(device) for t in host.sample(6)))  # the host's first 6 draws...
    kernel.sample(6)  # ...and the kernel buffer's
    pointers = [t.data_ptr() for t in out]
    assert kernel.sample(6, out=out) is out
    assert [t.data_ptr() for t in out] == pointers
    assert_same_bits(out, host.sample(6), device)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_kernel_sampler_errors(device):
    envs = StackedEnvs(1, (2, 2), 2, torch.uint8, seed=3)
    _, kernel = make_pair(envs, 8, device, n_step=3)
    with pytest.raises(ValueError, match="cannot sample from an empty buffer"):
        kernel.sample(4)
    rng = np.random.default_rng(3)
    add_rows([kernel], envs, [0], ["run"], rng)
    with pytest.raises(ValueError, match="no stored transition has a complete 3-step window"):
        kernel.sample(4)
    with pytest.raises(ValueError, match="window is not complete yet"):
        kernel.get([0])
    with pytest.raises(IndexError, match="slot 1 at position 0 is out of range"):
        kernel.get([1])
    for _ in range(3):
        add_rows([kernel], envs, [0], ["run"], rng)
    wrong_device = Batch(*(t.to("cpu" if device != "cpu" else "meta") for t in kernel.sample(2)))
    with pytest.raises(ValueError, match=f"out.obs: expected a contiguous tensor on {device}"):
        kernel.sample(2, out=wrong_device)
    with pytest.raises(ValueError, match="sampler: expected 'host' or 'kernel'"):
        pydqn.ReplayBuffer(8, (4,), sampler="gpu")


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_a_load_larger_than_one_device_copy_arrives_whole(device):
    # 1,500 transitions of 64 KiB frames: loading copies them to the device in 64 MiB pieces.
    envs = StackedEnvs(1, (256, 256), 4, torch.uint8, "distinct", seed=9)
    host, _ = make_pair(envs, 1500, device, seed=9)
    rng = np.random.default_rng(9)
    for step in range(1600):
        add_rows([host], envs, [0], ["terminated" if step % 400 == 399 else "run"], rng)
    _, kernel = make_pair(envs, 1500, device, seed=9)
    kernel.load_state_dict(host.state_dict())
    slots = list(range(len(host)))
    assert_same_bits(kernel.get(slots), host.get(slots), device)
    assert_same_bits(kernel.sample(64), host.sample(64), device)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_capacity_must_exceed_the_windows_that_can_be_open(device):
    with pytest.raises(ValueError, match=r"capacity: .* needs more than 8 slots .* got 8"):
        pydqn.ReplayBuffer(8, (4,), num_envs=2, n_step=3, device=device, sampler="kernel")
    pydqn.ReplayBuffer(9, (4,), num_envs=2, n_step=3, device=device, sampler="kernel")


@pytest.mark.cuda
def test_cuda_sampling_into_unaligned_out_tensors():
    # 36-byte frames into tensors offset by one byte: the kernel falls back to narrower words.
    envs = StackedEnvs(1, (6, 6), 4, torch.uint8, seed=10)
    host, kernel = make_pair(envs, 32, "cuda", seed=10)
    rng = np.random.default_rng(10)
    for _ in range(40):
        add_rows([host, kernel], envs, [0], ["run"], rng)
    expected = host.sample(8)

    def unaligned(t):
        storage = torch.empty(t.numel() * t.element_size() + 1, dtype=torch.uint8, device="cuda")
        return storage[1:].view(t.dtype).view(t.shape) if t.dtype == torch.uint8 else t.cuda()

    out = Batch(*(unaligned(t) for t in expected))
    assert out.obs.data_ptr() % 2 == 1
    assert_same_bits(kernel.sample(8, out=out), expected, "cuda")


@pytest.mark.skipif(cuda_ready(), reason="checks the error of a machine without a usable GPU")
def test_cuda_device_without_a_gpu_is_refused_clearly():
    with pytest.raises(ValueError, match=r"device: 'cuda'.*(no CUDA device|without CUDA kernels)"):
        pydqn.ReplayBuffer(8, (4,), device="cuda")


@pytest.mark.cuda
def test_cuda_device_refuses_the_host_sampler():
    with pytest.raises(ValueError, match="sampler: 'host' samples into CPU memory"):
        pydqn.ReplayBuffer(8, (4,), device="cuda", sampler="host")


def test_frames_are_stored_once_and_only_on_the_device():
    # Atari-sized frames, one stream, long episodes: the device holds about one frame per
    # transition (plus its per-slot tables and at most one partly used block of chunks), and the
    # host only the bookkeeping: no frame twice.
    envs = StackedEnvs(1, (84, 84), 4, torch.uint8, seed=4)
    host, kernel = make_pair(envs, 2000, "cpu")
    rng = np.random.default_rng(4)
    for _ in range(2000):
        add_rows([host, kernel], envs, [0], ["run"], rng)
    frame_bytes = 84 * 84
    assert 2000 * frame_bytes < kernel.device_nbytes < 2000 * frame_bytes * 1.05 + 2000 * 64
    assert host.device_nbytes == 0 and host.nbytes > 2000 * frame_bytes
    assert kernel.nbytes - kernel.device_nbytes < 0.1 * host.nbytes


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_overlapping_calls_are_refused_and_corrupt_nothing(device):
    # One thread adds while another samples large batches, until calls have overlapped; an
    # overlapping call raises and changes nothing, so the buffer ends equal to a host buffer given
    # exactly the adds that went through.
    envs = StackedEnvs(1, (84, 84), 4, torch.uint8, "distinct", seed=6)
    host, kernel = make_pair(envs, 64, device, seed=6)
    rng = np.random.default_rng(6)
    refused = {"add": 0, "sample": 0}
    done = threading.Event()

    def sampler():
        while not done.is_set():
            try:
                kernel.sample(256)
            except RuntimeError as error:
                assert "one call at a time" in str(error)
                refused["sample"] += 1
            except ValueError as error:
                assert "empty" in str(error)

    thread = threading.Thread(target=sampler)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        step = 0
        while (step < 200 or sum(refused.values()) < 5) and time.monotonic() < deadline:
            obs, next_obs = envs.step(0, step % 17 == 16)
            args = (
                obs[None],
                rng.integers(0, 4, 1),
                rng.standard_normal(1).astype(np.float32),
                next_obs[None],
                np.array([step % 17 == 16]),
                np.array([False]),
            )
            while True:
                try:
                    kernel.add(*args)
                    break
                except RuntimeError as error:
                    assert "one call at a time" in str(error)
                    refused["add"] += 1
            host.add(*args)
            step += 1
    finally:
        done.set()
        thread.join()
    assert sum(refused.values()) >= 5, refused  # the calls did overlap
    slots = list(range(len(host)))
    assert_same_bits(kernel.get(slots), host.get(slots), device)


@pytest.mark.cuda
def test_cuda_sampling_is_captured_in_a_cuda_graph():
    envs = StackedEnvs(2, (6, 6), 4, torch.uint8, "repeat", seed=7)
    host, kernel = make_pair(envs, 64, "cuda", seed=7)
    rng = np.random.default_rng(7)
    for _ in range(10):
        add_rows([host, kernel], envs, [0, 1], ["run", "run"], rng)
    out = kernel.sample(32)
    host.sample(32)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm up off the default stream, as graph capture wants
        kernel.sample(32, out=out)
        host.sample(32)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        kernel.sample(32, out=out)  # captured, not run: the draw counter stays where it was
    for step in range(60):  # past the 64-slot ring's capacity: evictions, recycled frame chunks
        add_rows([host, kernel], envs, [0, 1], ["run", "terminated" if step % 9 == 2 else "run"], rng)
        graph.replay()
        assert_same_bits(out, host.sample(32), "cuda")


@pytest.mark.cuda
def test_cuda_buffer_accepts_cuda_tensors():
    envs = StackedEnvs(1, (5, 5), 4, torch.uint8, seed=8)
    host, kernel = make_pair(envs, 16, "cuda", seed=8)
    for step in range(20):
        obs, next_obs = envs.step(0, step == 9)
        args = (
            torch.from_numpy(obs[None]),
            torch.tensor([step % 3]),
            torch.tensor([0.5]),
            torch.from_numpy(next_obs[None]),
            torch.tensor([step == 9]),
            torch.tensor([False]),
        )
        host.add(*args)
        kernel.add(*(a.cuda() for a in args))
    slots = list(range(len(host)))
    assert_same_bits(kernel.get(slots), host.get(slots), "cuda")


def test_the_oracle_stays_on_the_host():
    with pytest.raises(ValueError, match="device: expected 'cpu' \\(this buffer is host-resident\\)"):
        pydqn.PyReplayBuffer(8, (4,), device="cuda")
