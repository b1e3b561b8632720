"""The learner's update, target syncing and state round trip; the epsilon schedule and acting."""

import numpy as np
import pytest
import torch

from pydqn.agent.learner import DQNLearner, LearnerConfig
from pydqn.agent.models import MLP
from pydqn.agent.policy import LinearEpsilon, epsilon_greedy
from pydqn.replay.batch import Batch


def batch(seed=0, size=16, discount=0.99):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(size, 4, generator=g),
        action=torch.randint(0, 2, (size,), generator=g),
        reward=torch.randn(size, generator=g),
        next_obs=torch.randn(size, 4, generator=g),
        terminated=torch.rand(size, generator=g) < 0.2,
        truncated=torch.zeros(size, dtype=torch.bool),
        discount=torch.full((size,), discount),
        indices=torch.arange(size),
        transition_ids=torch.arange(size),
        weights=torch.ones(size),
    )


def learner(**changes):
    torch.manual_seed(0)
    return DQNLearner(MLP(4, 2, (16,)), LearnerConfig(learning_rate=1e-2, **changes))


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_updates_reduce_the_loss_on_a_fixed_batch(optimizer, loss):
    # A target that never moves makes this regression: the loss must fall.
    dqn = learner(optimizer=optimizer, loss=loss, target_update_interval=10**9, max_grad_norm=10.0)
    fixed = batch()
    first = dqn.update(fixed)["loss"].item()
    for _ in range(200):
        last = dqn.update(fixed)["loss"].item()
    assert last < 0.2 * first


def test_hard_target_sync_every_interval():
    dqn = learner(target_update_interval=3)
    for step in range(1, 7):
        dqn.update(batch(step))
        pairs = zip(dqn.target.parameters(), dqn.online.parameters(), strict=True)
        same = all(torch.equal(t, o) for t, o in pairs)
        assert same == (step % 3 == 0), step


def test_polyak_sync_by_hand():
    dqn = learner(tau=0.25, target_update_interval=1)
    before = [p.clone() for p in dqn.target.parameters()]
    dqn.update(batch())
    for target, old, online in zip(dqn.target.parameters(), before, dqn.online.parameters(), strict=True):
        assert torch.allclose(target, old + 0.25 * (online - old))


@pytest.mark.parametrize("double", [True, False])
@pytest.mark.parametrize("discount", [0.99, 0.99**3])  # one step; a 3-step window
def test_the_target_follows_the_double_option_and_the_batch_discount(double, discount):
    dqn = learner(double=double)
    b = batch(discount=discount)
    with torch.no_grad():
        for p in dqn.target.parameters():  # a target that lags the online net, as in training
            p.add_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
        next_q = dqn.target(b.next_obs)
        online_argmax = next_q.gather(1, dqn.online(b.next_obs).argmax(1, keepdim=True)).squeeze(1)
        bootstrap = online_argmax if double else next_q.max(1).values
        expected_target = b.reward + discount * (~b.terminated) * bootstrap
        q_taken = dqn.online(b.obs).gather(1, b.action[:, None]).squeeze(1)
        assert not torch.allclose(online_argmax, next_q.max(1).values)  # the option matters here
    td = dqn.update(b)["td_error"]
    assert torch.allclose(td, q_taken - expected_target, atol=1e-6)


def test_state_dict_round_trip_gives_identical_updates():
    a, b = learner(), learner()
    for step in range(5):
        a.update(batch(step))
    b.load_state_dict(a.state_dict())
    assert b.updates == 5
    out_a, out_b = a.update(batch(9)), b.update(batch(9))
    assert torch.equal(out_a["loss"], out_b["loss"])
    assert all(torch.equal(p, q) for p, q in zip(a.online.parameters(), b.online.parameters(), strict=True))


def test_a_state_saved_with_cuda_graph_loads_into_a_learner_without_it():
    """A run resumed with cuda_graph changed: the optimizer takes this learner's capturable flag,
    and its next update is the one a learner that never captured makes."""
    a, b = learner(), learner()
    for step in range(3):
        a.update(batch(step))
    state = a.state_dict()
    for group in state["optimizer"]["param_groups"]:
        group["capturable"] = True  # as a cuda_graph run saves it
    b.load_state_dict(state)
    assert all(group["capturable"] is False for group in b.optimizer.param_groups)
    assert torch.equal(a.update(batch(7))["loss"], b.update(batch(7))["loss"])
    assert all(torch.equal(p, q) for p, q in zip(a.online.parameters(), b.online.parameters(), strict=True))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(tau=0.0), "tau"),
        (dict(target_update_interval=0), "target_update_interval"),
        (dict(optimizer="sgd"), "optimizer"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        learner(**kwargs)


def test_linear_epsilon():
    schedule = LinearEpsilon(start=1.0, end=0.1, fraction=0.5, total_steps=1000)
    assert [schedule(s) for s in (0, 250, 500, 10_000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])


def test_epsilon_greedy_is_greedy_at_zero_and_uniform_at_one():
    torch.manual_seed(0)
    net = MLP(4, 3, (8,))
    obs = np.random.default_rng(0).standard_normal((500, 4)).astype(np.float32)
    with torch.no_grad():
        greedy = net(torch.from_numpy(obs)).argmax(1).numpy()
    rng = np.random.default_rng(1)
    assert np.array_equal(epsilon_greedy(net, obs, 0.0, 3, rng), greedy)
    counts = np.bincount(epsilon_greedy(net, obs, 1.0, 3, rng), minlength=3)
    assert counts.min() > 120  # ~167 each


def test_cuda_graph_needs_a_cuda_device():
    with pytest.raises(ValueError, match="cuda_graph: capturing the update needs a CUDA device, got cpu"):
        learner(cuda_graph=True)


@pytest.mark.cuda
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_a_captured_update_matches_the_eager_one(optimizer):
    """The CUDA-graph learner takes the same steps as the eager one (warm-up undone, target sync
    outside the graph), from the same start, on the same batches."""
    config = dict(learning_rate=1e-2, optimizer=optimizer, target_update_interval=2, max_grad_norm=1.0)
    torch.manual_seed(0)
    eager = DQNLearner(MLP(4, 2, (16,)), LearnerConfig(**config), "cuda")
    torch.manual_seed(0)
    graphed = DQNLearner(MLP(4, 2, (16,)), LearnerConfig(cuda_graph=True, **config), "cuda")
    for step in range(6):
        a, b = eager.update(batch(step)), graphed.update(batch(step))
        torch.testing.assert_close(b["loss"], a["loss"])
    for p, q in zip(
        [*eager.online.parameters(), *eager.target.parameters()],
        [*graphed.online.parameters(), *graphed.target.parameters()],
        strict=True,
    ):
        torch.testing.assert_close(q, p)


@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_importance_sampling_weights_scale_each_sample_loss(loss):
    # Prioritized replay's weights enter the loss as mean_i w_i l(td_i): a sample with weight 0
    # contributes nothing, one with weight 1 counts fully.
    weights = torch.linspace(0.0, 1.0, 16)
    b = batch()._replace(weights=weights)
    out = learner(loss=loss).update(b)
    td = out["td_error"]
    per_sample = torch.where(td.abs() < 1, 0.5 * td**2, td.abs() - 0.5) if loss == "huber" else td**2
    assert torch.allclose(out["loss"], (weights * per_sample).mean(), rtol=1e-6)
    unweighted = learner(loss=loss).update(batch())["loss"]
    assert torch.allclose(unweighted, per_sample.mean(), rtol=1e-6)
    assert not torch.allclose(out["loss"], unweighted)
