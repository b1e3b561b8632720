"""The DQN update step (forward, target, loss, backward, Adam) on an Atari batch with pydqn's fused
ops against the composite PyTorch version; eager everywhere, CUDA-graph captured on a GPU."""

import pytest
import torch
from bench_support import DEVICES, cuda_ready

from pydqn import ops
from pydqn.agent.models import NatureCNN
from pydqn.ops import reference as ops_reference

BATCH, ACTIONS = 32, 6
IMPLEMENTATIONS = {"fused": ops, "composite": ops_reference}


def update_step(device: str, implementation, capturable: bool = False):
    """A closure running one update on a fixed batch (static tensors, so a CUDA graph can replay it)."""
    torch.manual_seed(0)
    online, target_net = NatureCNN(ACTIONS).to(device), NatureCNN(ACTIONS).to(device)
    optimizer = torch.optim.Adam(online.parameters(), lr=1e-4, capturable=capturable)
    obs = torch.randint(0, 256, (BATCH, 4, 84, 84), dtype=torch.uint8, device=device)
    next_obs = torch.randint(0, 256, (BATCH, 4, 84, 84), dtype=torch.uint8, device=device)
    action = torch.randint(0, ACTIONS, (BATCH,), device=device)
    reward = torch.randn(BATCH, device=device)
    terminated = torch.rand(BATCH, device=device) < 0.1

    def step():
        with torch.no_grad():
            target = implementation.td_target(
                target_net(next_obs), reward, 0.99, terminated, online(next_obs)
            )
        loss, _ = implementation.q_td_loss(online(obs), action, target, "huber")
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        optimizer.step()

    return step


def synchronized(device: str, run):
    if device == "cpu":
        return run

    def run_and_wait():
        run()
        torch.cuda.synchronize()

    return run_and_wait


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_update_step_eager(benchmark, device, name):
    benchmark.group = f"update step, eager, {device}"
    torch.set_num_threads(1)
    step = update_step(device, IMPLEMENTATIONS[name])
    step()  # warm up allocator and kernels
    benchmark(synchronized(device, step))


@pytest.mark.skipif(not cuda_ready(), reason="needs a GPU")
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_update_step_cuda_graph(benchmark, name):
    benchmark.group = "update step, CUDA graph, cuda"
    step = update_step("cuda", IMPLEMENTATIONS[name], capturable=True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up on a side stream, as graph capture requires
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    benchmark(synchronized("cuda", graph.replay))
