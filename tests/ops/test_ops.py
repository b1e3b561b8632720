"""pydqn's ops: against values computed by hand, against composite PyTorch references (values and
gradients) on every device, through torch.library.opcheck, and under torch.compile."""

from typing import Any

import pytest
import torch
from devices import DEVICES
from torch._subclasses.fake_tensor import FakeTensorMode

from pydqn.ops import q_td_loss, reference, stack_gather, td_target

NEXT_Q_TARGET = torch.tensor([[1.0, 2.0], [3.0, 0.0], [5.0, 5.0]])
NEXT_Q_ONLINE = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 3.0]])  # argmax: 0, 0, 1
REWARD = torch.tensor([1.0, -1.0, 0.5])
TERMINATED = torch.tensor([False, True, False])


def test_max_target_by_hand():
    target = td_target(NEXT_Q_TARGET, REWARD, 0.99, TERMINATED)
    assert torch.allclose(target, torch.tensor([1 + 0.99 * 2, -1.0, 0.5 + 0.99 * 5]))


def test_double_dqn_target_by_hand():
    target = td_target(NEXT_Q_TARGET, REWARD, 0.99, TERMINATED, next_q_online=NEXT_Q_ONLINE)
    # The online net picks action 0 for the first row, whose target value is 1, not the max 2.
    assert torch.allclose(target, torch.tensor([1 + 0.99 * 1, -1.0, 0.5 + 0.99 * 5]))


def test_per_sample_discount_and_truncation_bootstraps():
    discount = torch.tensor([0.9, 0.9**2, 0.9**3])
    target = td_target(NEXT_Q_TARGET, REWARD, discount, torch.zeros(3, dtype=torch.bool))
    assert torch.allclose(target, torch.tensor([1 + 0.9 * 2, -1 + 0.81 * 3, 0.5 + 0.729 * 5]))


def test_target_carries_no_gradient():
    next_q = NEXT_Q_TARGET.clone().requires_grad_()
    assert not td_target(next_q, REWARD, 0.99, TERMINATED).requires_grad


Q = [[0.5, 1.0], [2.0, -1.0], [0.0, 4.0]]
ACTION = torch.tensor([1, 0, 1])
TARGET = torch.tensor([1.99, -1.0, 5.45])
TD = [1.0 - 1.99, 2.0 + 1.0, 4.0 - 5.45]  # Q(s, a) - target


@pytest.mark.parametrize(
    "kind,loss,grad",
    [
        (
            "huber",
            (0.5 * TD[0] ** 2 + (abs(TD[1]) - 0.5) + (abs(TD[2]) - 0.5)) / 3,
            [TD[0] / 3, 1 / 3, -1 / 3],
        ),
        ("mse", sum(t * t for t in TD) / 3, [2 * t / 3 for t in TD]),
    ],
)
def test_loss_td_errors_and_gradients_by_hand(kind, loss, grad):
    q = torch.tensor(Q, requires_grad=True)
    value, td_error = q_td_loss(q, ACTION, TARGET, kind)
    assert value.item() == pytest.approx(loss, rel=1e-6)
    assert torch.allclose(td_error, torch.tensor(TD))
    value.backward()
    expected = torch.zeros(3, 2)
    expected[torch.arange(3), ACTION] = torch.tensor(grad)
    assert q.grad is not None and torch.allclose(q.grad, expected)  # only the taken actions get gradient


BAD_ARGUMENTS = [
    (
        lambda: td_target(NEXT_Q_TARGET, REWARD[:2], 0.99, TERMINATED),
        ValueError,
        "reward: expected shape (3,)",
    ),
    (
        lambda: td_target(NEXT_Q_TARGET, REWARD, 0.99, TERMINATED.float()),
        TypeError,
        "terminated: expected torch.bool",
    ),
    (
        lambda: td_target(NEXT_Q_TARGET, REWARD, 0.99, TERMINATED, NEXT_Q_ONLINE[:, :1]),
        ValueError,
        "next_q_online",
    ),
    (
        lambda: q_td_loss(torch.zeros(3, 2), ACTION.int(), TARGET),
        TypeError,
        "action: expected torch.int64",
    ),
    (
        lambda: q_td_loss(torch.zeros(3, 2), ACTION, TARGET, "l1"),  # type: ignore[arg-type]
        ValueError,
        "kind: expected 'huber' or 'mse'",
    ),
    (
        lambda: q_td_loss(torch.zeros(3, 2), torch.tensor([0, 2, 1]), TARGET),
        IndexError,
        "action: expected values in [0, 2), got 2 at row 1",
    ),
    (
        lambda: q_td_loss(torch.zeros(3, 2), ACTION, TARGET.double()),
        TypeError,
        "target: expected Float like q, got Double",
    ),
    (
        lambda: q_td_loss(torch.zeros(3, 2), ACTION, TARGET, weights=torch.ones(2)),
        ValueError,
        "weights: expected shape (3,)",
    ),
    (
        lambda: td_target(NEXT_Q_TARGET, REWARD, torch.ones(2), TERMINATED),
        ValueError,
        "discount: expected one value or shape (3,)",
    ),
    (
        lambda: td_target(NEXT_Q_TARGET.numpy(), REWARD, 0.99, TERMINATED),  # type: ignore[arg-type]
        TypeError,
        "next_q_target: expected a torch.Tensor, got ndarray",
    ),
    (
        lambda: stack_gather(torch.zeros(4, 2), torch.tensor([[0, 4]])),
        IndexError,
        "frame_index: expected values in [0, 4), got 4 at flat position 1",
    ),
    (
        lambda: stack_gather(torch.zeros(0, 2), torch.tensor([[0, 0]])),
        IndexError,
        "frame_index: expected no index into frames that hold no frame, got 2 indices",
    ),
    (
        lambda: stack_gather(torch.zeros(4, 2), torch.tensor([0, 1])),
        ValueError,
        "frame_index: expected shape (B, k)",
    ),
    (
        lambda: stack_gather(torch.zeros(4, 2), torch.tensor([[0, 1]], dtype=torch.int32)),
        TypeError,
        "frame_index: expected torch.int64",
    ),
]


@pytest.mark.parametrize("call,error,message", BAD_ARGUMENTS)
def test_bad_arguments(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


# The kernels' contracts: not what only the data shows (an index out of range), which a fake cannot
# check, nor the Python wrappers' own refusal of non-tensors.
SHAPE_AND_DTYPE_CASES = [
    case for case in BAD_ARGUMENTS if case[1] is not IndexError and "expected a torch.Tensor" not in case[2]
]


@pytest.mark.parametrize("call,error,message", SHAPE_AND_DTYPE_CASES)
def test_the_fakes_refuse_what_the_kernels_refuse(call, error, message):
    """Traced (fake) tensors meet the same contract: the same error type, naming the argument."""
    argument = message.split(":")[0]
    with FakeTensorMode(allow_non_fake_inputs=True), pytest.raises(error) as info:
        call()
    assert str(info.value).startswith(f"{argument}:") or f"{argument}: " in str(info.value)


def q_values(batch, actions, device, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(batch, actions, generator=generator, dtype=dtype)).to(device)


def td_inputs(device, dtype=torch.float64, batch=64, actions=6):
    generator = torch.Generator().manual_seed(1)
    return dict(
        next_q_target=q_values(batch, actions, device, dtype, seed=2),
        reward=torch.randn(batch, generator=generator, dtype=dtype).to(device),
        discount=torch.rand(batch, generator=generator, dtype=dtype).to(device),
        terminated=(torch.rand(batch, generator=generator) < 0.3).to(device),
        next_q_online=q_values(batch, actions, device, dtype, seed=3),
    )


def loss_inputs(device, dtype=torch.float64, batch=64, actions=6, weighted=True) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(4)
    return dict(
        q=q_values(batch, actions, device, dtype, seed=5).requires_grad_(),
        action=torch.randint(0, actions, (batch,), generator=generator).to(device),
        # TD errors on both sides of the Huber loss's kink at |d| = 1
        target=(3 * torch.randn(batch, generator=generator, dtype=dtype)).to(device).requires_grad_(),
        weights=torch.rand(batch, generator=generator, dtype=dtype).to(device) if weighted else None,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("double", [True, False])
@pytest.mark.parametrize("per_row_discount", [True, False])
def test_td_target_matches_the_reference(device, double, per_row_discount):
    args = td_inputs(device)
    if not double:
        args["next_q_online"] = None
    if not per_row_discount:
        args["discount"] = 0.99
    torch.testing.assert_close(td_target(**args), reference.td_target(**args))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["huber", "mse"])
@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_q_td_loss_values_and_gradients_match_the_reference(device, kind, weighted, dtype):
    ours = loss_inputs(device, dtype, weighted=weighted)
    theirs: dict[str, Any] = {
        k: v.detach().clone().requires_grad_(v.requires_grad) if v is not None else None
        for k, v in ours.items()
    }
    loss, td_error = q_td_loss(kind=kind, **ours)
    expected_loss, expected_td = reference.q_td_loss(kind=kind, **theirs)
    torch.testing.assert_close(loss, expected_loss)
    torch.testing.assert_close(td_error, expected_td)
    assert not td_error.requires_grad
    (2.5 * loss).backward()
    (2.5 * expected_loss).backward()
    torch.testing.assert_close(ours["q"].grad, theirs["q"].grad)
    torch.testing.assert_close(ours["target"].grad, theirs["target"].grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_stack_gather_matches_indexing(device, dtype):
    frames = torch.randint(0, 255, (50, 7, 9), dtype=torch.uint8).to(dtype).to(device)
    index = torch.randint(0, 50, (33, 4)).to(device)
    assert torch.equal(stack_gather(frames, index), reference.stack_gather(frames, index))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_every_op(device):
    """Schemas, fake implementations, autograd registration and AOT dispatch, per torch."""
    opcheck = torch.library.opcheck
    td = td_inputs(device)
    opcheck(
        torch.ops.pydqn.td_target.default,
        tuple(td[k] for k in ("next_q_target", "reward", "discount", "terminated", "next_q_online")),
    )
    opcheck(
        torch.ops.pydqn.td_target.default,
        (td["next_q_target"], td["reward"], td["discount"][:1], td["terminated"]),
    )
    for kind in ("huber", "mse"):
        for weighted in (True, False):
            args = loss_inputs(device, weighted=weighted)
            opcheck(
                torch.ops.pydqn.q_td_loss.default,
                (args["q"], args["action"], args["target"], args["weights"], kind),
            )
    frames = torch.randint(0, 255, (20, 5, 5), dtype=torch.uint8, device=device)
    opcheck(torch.ops.pydqn.stack_gather.default, (frames, torch.randint(0, 20, (8, 4), device=device)))


@pytest.mark.parametrize("device", DEVICES)
def test_a_compiled_update_step_uses_the_ops(device):
    """torch.compile traces through the ops (fullgraph: no graph break) and computes the same."""

    def step(next_q_target, reward, discount, terminated, next_q_online, q, action):
        target = td_target(next_q_target, reward, discount, terminated, next_q_online)
        loss, td_error = q_td_loss(q, action, target)
        return loss, td_error

    td, loss = td_inputs(device), loss_inputs(device)
    args = (*td.values(), loss["q"].detach(), loss["action"])
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    for got, expected in zip(compiled(*args), step(*args), strict=True):
        torch.testing.assert_close(got, expected)
