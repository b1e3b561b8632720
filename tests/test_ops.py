"""The TD target and loss against values computed by hand."""

import pytest
import torch

from pydqn.ops import q_td_loss, td_target

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


@pytest.mark.parametrize("kind,loss,grad", [
    ("huber", (0.5 * TD[0] ** 2 + (abs(TD[1]) - 0.5) + (abs(TD[2]) - 0.5)) / 3,
     [TD[0] / 3, 1 / 3, -1 / 3]),
    ("mse", sum(t * t for t in TD) / 3, [2 * t / 3 for t in TD]),
])
def test_loss_td_errors_and_gradients_by_hand(kind, loss, grad):
    q = torch.tensor(Q, requires_grad=True)
    value, td_error = q_td_loss(q, ACTION, TARGET, kind)
    assert value.item() == pytest.approx(loss, rel=1e-6)
    assert torch.allclose(td_error, torch.tensor(TD))
    value.backward()
    expected = torch.zeros(3, 2)
    expected[torch.arange(3), ACTION] = torch.tensor(grad)
    assert torch.allclose(q.grad, expected)  # only the taken actions get gradient


@pytest.mark.parametrize("call,error,message", [
    (lambda: td_target(NEXT_Q_TARGET, REWARD[:2], 0.99, TERMINATED), ValueError, "reward: expected shape (3,)"),
    (lambda: td_target(NEXT_Q_TARGET, REWARD, 0.99, TERMINATED.float()), TypeError, "terminated: expected torch.bool"),
    (lambda: td_target(NEXT_Q_TARGET, REWARD, 0.99, TERMINATED, NEXT_Q_ONLINE[:, :1]), ValueError, "next_q_online"),
    (lambda: q_td_loss(torch.zeros(3, 2), ACTION.int(), TARGET), TypeError, "action: expected torch.int64"),
    (lambda: q_td_loss(torch.zeros(3, 2), ACTION, TARGET, "l1"), ValueError, "kind: expected 'huber' or 'mse'"),
])
def test_bad_arguments(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)
