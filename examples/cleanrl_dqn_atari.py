"""DQN on Atari in CleanRL's single-file style, on pydqn's replay buffer.

The only line that differs from the same script on Stable-Baselines3's buffer is the import of
``ReplayBuffer`` below: SB3's keeps two 4-frame stacks per transition (56.4 GB for 1M Atari
transitions, 28.2 GB with ``optimize_memory_usage``), pydqn's keeps the one new frame (~7.1 GB).

    python examples/cleanrl_dqn_atari.py --env-id ALE/Pong-v5 --total-timesteps 10000000

Envs: gymnasium's ``AtariPreprocessing`` (84x84 grayscale, frame skip 4, noop starts) and
``FrameStackObservation(4)``, in a same-step-autoreset vector env whose ``infos["final_obs"]``
carries the final observation of an episode that ended.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from dataclasses import dataclass

import ale_py
import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# SB3's buffer instead: from stable_baselines3.common.buffers import ReplayBuffer
from pydqn.integrations.sb3 import ReplayBuffer

gym.register_envs(ale_py)


@dataclass
class Args:
    env_id: str = "ALE/Breakout-v5"
    total_timesteps: int = 10_000_000
    num_envs: int = 1
    buffer_size: int = 1_000_000
    learning_rate: float = 1e-4
    gamma: float = 0.99
    tau: float = 1.0  # target network update rate
    target_network_frequency: int = 1000
    batch_size: int = 32
    start_e: float = 1.0
    end_e: float = 0.01
    exploration_fraction: float = 0.10
    learning_starts: int = 80_000
    train_frequency: int = 4
    max_episode_frames: int = 0  # emulator frames an episode may last (0: the env's own limit)
    seed: int = 1
    cuda: bool = True
    log_every: int = 10_000  # global steps between progress lines


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kinds = {"int": int, "float": float, "str": str, "bool": lambda s: s.lower() in ("1", "true", "yes")}
    for field in dataclasses.fields(Args):
        parser.add_argument(
            "--" + field.name.replace("_", "-"), type=kinds[str(field.type)], default=field.default
        )
    return Args(**vars(parser.parse_args()))


def make_env(env_id: str, seed: int, max_episode_frames: int):
    def thunk() -> gym.Env:
        limit = {"max_episode_steps": max_episode_frames} if max_episode_frames else {}
        env = gym.make(env_id, frameskip=1, **limit)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        env = gym.wrappers.AtariPreprocessing(env, frame_skip=4, screen_size=84, noop_max=30)
        env = gym.wrappers.FrameStackObservation(env, 4)
        env.action_space.seed(seed)
        return env

    return thunk


class QNetwork(nn.Module):
    def __init__(self, actions: int) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(3136, 512), nn.ReLU(),
            nn.Linear(512, actions),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x / 255.0)


def linear_schedule(start_e: float, end_e: float, duration: int, t: int) -> float:
    return max(end_e, start_e + (end_e - start_e) * t / duration)


def main() -> None:
    args = parse_args()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, args.seed + i, args.max_episode_frames) for i in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    assert isinstance(envs.single_action_space, gym.spaces.Discrete), "only discrete actions"

    q_network = QNetwork(int(envs.single_action_space.n)).to(device)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate)
    target_network = QNetwork(int(envs.single_action_space.n)).to(device)
    target_network.load_state_dict(q_network.state_dict())
    rb = ReplayBuffer(
        args.buffer_size,
        envs.single_observation_space,
        envs.single_action_space,
        device,
        n_envs=args.num_envs,
        optimize_memory_usage=True,
        handle_timeout_termination=False,
    )

    start_time = time.time()
    obs, _ = envs.reset(seed=args.seed)
    returns: list[float] = []
    for global_step in range(args.total_timesteps):
        epsilon = linear_schedule(
            args.start_e, args.end_e, int(args.exploration_fraction * args.total_timesteps), global_step
        )
        if random.random() < epsilon:
            actions = np.array([envs.single_action_space.sample() for _ in range(envs.num_envs)])
        else:
            q_values = q_network(torch.as_tensor(obs, device=device))
            actions = torch.argmax(q_values, dim=1).cpu().numpy()

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        if "final_info" in infos and "episode" in infos["final_info"]:
            finished = infos["final_info"]["_episode"]
            returns.extend(float(r) for r in infos["final_info"]["episode"]["r"][finished])

        # The real next observation of truncated episodes, as CleanRL substitutes it.
        real_next_obs = next_obs.copy()
        for idx, trunc in enumerate(truncations):
            if trunc:
                real_next_obs[idx] = infos["final_obs"][idx]
        rb.add(obs, real_next_obs, actions, rewards, terminations, infos)
        obs = next_obs

        if global_step > args.learning_starts and global_step % args.train_frequency == 0:
            data = rb.sample(args.batch_size)
            with torch.no_grad():
                target_max, _ = target_network(data.next_observations).max(dim=1)
                td_target = data.rewards.flatten() + args.gamma * target_max * (1 - data.dones.flatten())
            old_val = q_network(data.observations).gather(1, data.actions).squeeze()
            loss = F.mse_loss(td_target, old_val)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if global_step > args.learning_starts and global_step % args.target_network_frequency == 0:
            for target_param, param in zip(target_network.parameters(), q_network.parameters(), strict=True):
                target_param.data.copy_(args.tau * param.data + (1.0 - args.tau) * target_param.data)
        if (global_step + 1) % args.log_every == 0 or global_step + 1 == args.total_timesteps:
            recent = f"{np.mean(returns[-20:]):.1f}" if returns else "n/a"
            sps = int((global_step + 1) / (time.time() - start_time))
            print(
                f"step {global_step + 1}: episodes {len(returns)}, mean return (last 20) {recent}, SPS {sps}"
            )
    envs.close()


if __name__ == "__main__":
    main()
