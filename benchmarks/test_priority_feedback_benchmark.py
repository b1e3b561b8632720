"""What feeding |TD errors| back to prioritized replay costs a learner per update: the same
sample-and-update loop (Nature CNN, Atari stacks, B=32) with and without ``update_priorities``
after each update, on a prioritized buffer that lives on the learner's device.

On a GPU the priorities come back to the host (32 floats): the host waits for each update before it
can queue the next, where without the feedback it queues updates ahead of the GPU. On the CPU
nothing is queued, and the difference is the trees' update alone. Each timed round is UPDATES
updates and a wait for the device; per update = (with - without) / UPDATES.

Run: pytest benchmarks/test_priority_feedback_benchmark.py --benchmark-group-by=group
     (PYDQN_FEEDBACK_ROUNDS: timed rounds per variant, default 10)
"""

import os

import pytest
import torch
from bench_support import DEVICES

from pydqn.agent.learner import DQNLearner, LearnerConfig
from pydqn.agent.models import NatureCNN
from pydqn.bench.replay import FRAME_STACK, OBS_SHAPE, AtariStreams, fill
from pydqn.replay.buffer import ReplayBuffer

CAPACITY, NUM_ENVS, BATCH, ACTIONS = 20_000, 8, 32, 6
UPDATES = 10  # per timed round: enough for queued work to show
ROUNDS = int(os.environ.get("PYDQN_FEEDBACK_ROUNDS", "10"))
PRIORITY_EPSILON = 1e-6


@pytest.fixture(scope="module", params=DEVICES)
def learner_and_buffer(request):
    device = torch.device(request.param)
    torch.manual_seed(0)
    buffer = ReplayBuffer(
        CAPACITY, OBS_SHAPE, frame_stack=FRAME_STACK, num_envs=NUM_ENVS, device=device, prioritized=True
    )
    fill(buffer, AtariStreams(NUM_ENVS), CAPACITY)
    return DQNLearner(NatureCNN(ACTIONS), LearnerConfig(), device), buffer


def updates(learner: DQNLearner, buffer: ReplayBuffer, feedback: bool, calls: list[int]):
    wait = torch.cuda.synchronize if learner.device.type == "cuda" else (lambda: None)

    def run() -> None:
        calls.append(UPDATES)
        for _ in range(UPDATES):
            batch = buffer.sample(BATCH, beta=0.4)
            td_error = learner.update(batch)["td_error"]
            if feedback:
                buffer.update_priorities(batch.transition_ids, td_error.abs().double() + PRIORITY_EPSILON)
        wait()

    return run


@pytest.mark.parametrize("feedback", [False, True], ids=["without feedback", "with feedback"])
def test_updates_with_priority_feedback(benchmark, learner_and_buffer, feedback):
    learner, buffer = learner_and_buffer
    torch.set_num_threads(1)
    benchmark.group = f"{UPDATES} prioritized updates, {learner.device.type}"
    benchmark.extra_info["updates_per_round"] = UPDATES
    calls: list[int] = []
    before = learner.updates
    benchmark.pedantic(updates(learner, buffer, feedback, calls), rounds=ROUNDS, warmup_rounds=1)
    assert calls and learner.updates == before + sum(calls)
