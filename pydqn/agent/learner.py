"""The DQN learner: online and target Q-networks, the optimizer, and one update from a batch."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from pydqn import ops
from pydqn.agent.cuda_graph import CapturedStep
from pydqn.agent.placement import BatchMover
from pydqn.device import resolve_device
from pydqn.replay.batch import Batch
from pydqn.settings import POSITIVE, UNIT, Range, checked_fields, setting

GROUP = "learning"


@dataclass
class LearnerConfig:
    """Hyperparameters of the update. Defaults follow CleanRL's DQN on Atari (Adam, Huber, Double)."""

    gamma: float = setting(0.99, "discount of future rewards", group=GROUP, valid=UNIT)
    learning_rate: float = setting(
        1e-4, "the optimizer's step size", group=GROUP, valid=Range(0.0, 1.0, True)
    )
    optimizer: Literal["adam", "rmsprop"] = setting("adam", "the optimizer", group=GROUP)
    adam_eps: float = setting(1.5e-4, "Adam's epsilon", group=GROUP, valid=Range(0.0, 1.0, True))
    # RMSprop as in Mnih et al. 2015: squared-gradient momentum 0.95, min squared gradient 0.01.
    rmsprop_alpha: float = setting(
        0.95, "RMSprop's squared-gradient momentum", group=GROUP, valid=Range(0.0, 1.0, high_open=True)
    )
    rmsprop_eps: float = setting(0.01, "RMSprop's epsilon", group=GROUP, valid=Range(0.0, 1.0, True))
    loss: ops.LossKind = setting("huber", "the TD loss", group=GROUP)
    double: bool = setting(True, "Double DQN: the online network picks the next action", group=GROUP)
    max_grad_norm: float | None = setting(
        None,
        "clip the gradient's global norm to this (none: no clipping)",
        group=GROUP,
        valid=Range(0.0, 1e6, True),
    )
    target_update_interval: int = setting(
        1000, "updates between target-network syncs", group=GROUP, valid=POSITIVE
    )
    tau: float = setting(
        1.0,
        "target sync: 1 copies the online network, < 1 averages (Polyak)",
        group=GROUP,
        valid=Range(0.0, 1.0, True),
    )
    # The gradient step in a CUDA graph: capturable optimizer, fused ops, no host synchronization.
    cuda_graph: bool = setting(
        False, "CUDA only: replay the update as a captured CUDA graph", group=GROUP, resumable=True
    )

    def validate(self) -> LearnerConfig:
        """This configuration with its values as their types hold them; raises `SettingError`
        naming the first setting of the wrong type or out of range."""
        return checked_fields(self)


class DQNLearner:
    """Owns the online and target networks and updates them from replay batches.

    ``update`` returns detached tensors (loss, mean Q, TD errors) instead of Python numbers so the
    training loop decides when to synchronise with the device (its logging interval).
    """

    def __init__(
        self, q_network: nn.Module, config: LearnerConfig, device: torch.device | str = "cpu"
    ) -> None:
        self.config = config.validate()
        self.device = resolve_device(device)
        if config.cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph: capturing the update needs a CUDA device, got {self.device}")
        self.online = q_network.to(self.device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = self._make_optimizer()
        self.updates = 0
        self._to_device = BatchMover(self.device)
        self._captured: CapturedStep | None = None  # cuda_graph: the captured gradient step

    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        params = self.online.parameters()
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.learning_rate, eps=c.adam_eps, capturable=c.cuda_graph)
        if c.optimizer == "rmsprop":
            return torch.optim.RMSprop(
                params,
                lr=c.learning_rate,
                alpha=c.rmsprop_alpha,
                eps=c.rmsprop_eps,
                centered=True,
                capturable=c.cuda_graph,
            )
        raise ValueError(f"optimizer: expected 'adam' or 'rmsprop', got {c.optimizer!r}")

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step on ``batch``; syncs the target network when its interval is due."""
        batch = self._to_device(batch)
        if self.config.cuda_graph:
            if self._captured is None:
                self._captured = CapturedStep(self._gradient_step, self.online, self.optimizer, batch)
            metrics = self._captured(batch)
        else:
            self.optimizer.zero_grad(set_to_none=True)
            metrics = self._gradient_step(batch)
        self.updates += 1
        if self.updates % self.config.target_update_interval == 0:
            self.sync_target()
        return metrics

    def _gradient_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Target, loss, backward pass and optimizer step on a device batch; the gradients must
        be zero (or None) on entry. Tensors only, no host synchronization: CUDA graphs capture it."""
        with torch.no_grad():
            next_q_target = self.target(batch.next_obs)
            next_q_online = self.online(batch.next_obs) if self.config.double else None
            # batch.discount is gamma^m: gamma for one-step transitions, less for n-step windows.
            target = ops.td_target(
                next_q_target, batch.reward, batch.discount, batch.terminated, next_q_online
            )
        q = self.online(batch.obs)
        # Importance-sampling weights: 1 unless the batch came from prioritized replay.
        loss, td_error = ops.q_td_loss(q, batch.action, target, self.config.loss, batch.weights)
        loss.backward()
        if self.config.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.online.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        return {"loss": loss.detach(), "q_mean": q.detach().mean(), "td_error": td_error}

    @torch.no_grad()
    def sync_target(self) -> None:
        """Copy (tau = 1) or Polyak-average (tau < 1) the online weights into the target."""
        tau = self.config.tau
        for target, online in zip(self.target.parameters(), self.online.parameters(), strict=True):
            if tau == 1.0:
                target.copy_(online)
            else:
                target.lerp_(online, tau)

    def state_dict(self) -> dict:
        return {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict) -> None:
        """Load a `state_dict`; raises ValueError naming the part of ``state`` that does not fit
        this learner (another network's weights, a damaged optimizer state), and then changes
        nothing."""
        parts = ("online", "target", "optimizer", "updates")
        if not isinstance(state, dict) or set(state) != set(parts):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"learner state: expected the parts {list(parts)}, got {got}")
        updates = state["updates"]
        if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
            raise ValueError(f"learner state: updates: expected an integer >= 0, got {updates!r}")
        before = copy.deepcopy(self.state_dict())
        try:
            self._load(state)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
            self._load(before)
            detail = " ".join(str(error).split())  # torch's messages span lines
            raise ValueError(f"learner state: does not fit this learner: {detail}") from None

    def _match_capturable(self) -> None:
        """A loaded optimizer state brings the saved run's ``capturable`` flag: set it back to this
        learner's (a run resumed with cuda_graph changed), with the step counters where torch keeps
        them for it (on the parameter's device when capturable, else on the host)."""
        capturable = self.config.cuda_graph
        for group in self.optimizer.param_groups:
            group["capturable"] = capturable
            for parameter in group["params"]:
                moments = self.optimizer.state.get(parameter, {})
                if isinstance(moments.get("step"), torch.Tensor):
                    place = parameter.device if capturable else torch.device("cpu")
                    moments["step"] = moments["step"].to(place, torch.float32)

    def _load(self, state: dict) -> None:
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        # torch's optimizer keeps some state tensors (Adam's step) by reference: copy them, or two
        # learners loaded from one in-memory state would advance a shared counter.
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self._match_capturable()
        # torch checks the parameter groups, not the shapes of the moments: a mismatch would only
        # surface at the next step.
        for parameter, moments in self.optimizer.state.items():
            for name, moment in moments.items():
                if isinstance(moment, torch.Tensor) and moment.dim() and moment.shape != parameter.shape:
                    raise ValueError(
                        f"optimizer {name}: shape {tuple(moment.shape)} for a parameter of shape "
                        f"{tuple(parameter.shape)}"
                    )
        self.updates = int(state["updates"])
        self._captured = None  # the optimizer's state tensors were replaced: capture again
