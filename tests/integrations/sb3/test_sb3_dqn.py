"""A real SB3 DQN on Pong (SB3's make_atari_env + VecFrameStack(4), 4 envs, episodes cut short so
that truncations happen) trains with the adapter: each buffer stores the rows SB3's own buffer
stores from the same calls, in at most 7.4 KB per transition."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch
from sb3_calls import rows_of

pytest.importorskip("stable_baselines3")
from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack

from pydqn.integrations.sb3 import DQN, PrioritizedReplayBuffer, ReplayBuffer

pytestmark = pytest.mark.slow
N_ENVS, CAPACITY = 4, 4000


def tee(base: type[ReplayBuffer]) -> type[ReplayBuffer]:
    """``base`` that also hands every add to SB3's plain buffer, the oracle."""

    class Tee(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.oracle = SB3ReplayBuffer(
                self.buffer_size * self.n_envs, self.observation_space, self.action_space, "cpu", self.n_envs
            )
            self.truncations = 0

        def add(self, obs, next_obs, action, reward, done, infos) -> None:
            super().add(obs, next_obs, action, reward, done, infos)
            self.oracle.add(obs, next_obs, action, reward, done, infos)
            self.truncations += sum(bool(info.get("TimeLimit.truncated")) for info in infos)

    return Tee


def pong() -> VecFrameStack:
    # 400 agent steps (1,600 frames) per episode at most: every env truncates within the run.
    env = make_atari_env("ALE/Pong-v5", n_envs=N_ENVS, seed=0, env_kwargs={"max_episode_steps": 400})
    return VecFrameStack(env, 4)


def oracle_rows(oracle: SB3ReplayBuffer) -> Counter:
    size = oracle.size()
    return rows_of(
        oracle.observations[:size].reshape(-1, *oracle.obs_shape),
        oracle.actions[:size].reshape(-1),
        oracle.next_observations[:size].reshape(-1, *oracle.obs_shape),
        (oracle.dones[:size] * (1 - oracle.timeouts[:size])).reshape(-1),
        oracle.rewards[:size].reshape(-1),
    )


@pytest.mark.parametrize(
    ("buffer_class", "n_steps"),
    [(ReplayBuffer, 1), (ReplayBuffer, 3), (PrioritizedReplayBuffer, 1)],
    ids=["uniform", "3-step", "prioritized"],
)
def test_sb3_dqn_trains_on_pong_with_the_adapter(buffer_class: type[ReplayBuffer], n_steps: int) -> None:
    env = pong()
    model = DQN(
        "CnnPolicy",
        env,
        buffer_size=CAPACITY,
        learning_starts=CAPACITY,
        train_freq=4,
        batch_size=32,
        replay_buffer_class=tee(buffer_class),
        n_steps=n_steps,
        seed=0,
        device="cpu",
    )
    assert isinstance(model.replay_buffer, buffer_class)
    buffer: Any = model.replay_buffer
    assert buffer.n_steps == n_steps
    model.learn(CAPACITY)  # fills the buffer; learning starts at its last step
    assert buffer.full and buffer.truncations >= N_ENVS
    # Before the first batch is drawn: after it, nbytes also counts the two reusable batch blocks
    # that sample() keeps (1.8 MB at B=32, the memory SB3 allocates afresh for every batch).
    per_transition = buffer.nbytes / len(buffer.pydqn_buffer)
    assert per_transition <= 7400, per_transition
    if n_steps == 1:
        stored = buffer.pydqn_buffer.get(torch.arange(CAPACITY))
        layout = buffer.frame_layout
        ours = rows_of(
            layout.from_buffer(stored.obs), stored.action, layout.from_buffer(stored.next_obs),
            stored.terminated.float(), stored.reward,
        )  # fmt: skip
        assert ours == oracle_rows(buffer.oracle)

    model.learn(400, reset_num_timesteps=False)  # 25 updates from the adapter's batches
    assert model._n_updates >= 20
    params = torch.nn.utils.parameters_to_vector(model.q_net.parameters())
    assert torch.isfinite(params).all()
    if buffer_class is PrioritizedReplayBuffer:
        # Fed-back priorities make the draw non-uniform: weights below 1 appear.
        weights = buffer.sample(256, beta=1.0).weights
        assert weights.max() <= 1.0 and weights.min() < 1.0
    env.close()


def test_default_replay_of_pydqns_dqn_is_pydqns_buffer() -> None:
    env = pong()
    model = DQN("CnnPolicy", env, buffer_size=1000, learning_starts=10_000, device="cpu")
    assert type(model.replay_buffer) is ReplayBuffer
    model.learn(40)
    buffer = model.replay_buffer
    assert isinstance(buffer, ReplayBuffer) and buffer.frame_layout is not None
    assert buffer.frame_layout.frames == 4
    assert buffer.size() == model.num_timesteps // N_ENVS
    env.close()
