"""`ExperienceActor`: one Ape-X actor's envs, stepped with a CPU copy of the learner's network.

It runs in a Ray actor process (`pydqn.distributed.fleet`), but is plain Python: nothing here
knows about Ray. Each `collect` steps the envs ``chunk_steps`` times and returns what they did as
an `ActorReport`, whose `ExperienceChunk` carries each step's new frame once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from pydqn.agent.policy import epsilon_greedy
from pydqn.distributed.chunks import ChunkWriter, ExperienceChunk
from pydqn.distributed.exploration import ActorExploration
from pydqn.envs import EPISODE_DONE, EPISODE_LENGTH, EPISODE_RETURN, TransitionFilter, num_actions
from pydqn.settings import MAX_SEED
from pydqn.training.components import frame_stack_of, make_network, make_run_env
from pydqn.training.config import TrainConfig

# (num_envs, seed) -> the envs: a custom env for the Python API; default: the run's env id.
EnvFactory = Callable[[int, int], VectorEnv]


@dataclass(frozen=True)
class ActorReport:
    """What one `ExperienceActor.collect` call did."""

    actor: int
    incarnation: str  # new for each process that runs the actor: a change is a restart
    weights_version: int  # of the network it acted with
    chunk: ExperienceChunk
    env_steps: int  # steps summed over its envs (rows the TransitionFilter dropped included)
    episode_returns: np.ndarray  # float64, of the games that ended, in order
    episode_lengths: np.ndarray  # int64
    epsilon: float
    seconds: float  # spent collecting


class ExperienceActor:
    """Actor ``actor`` of ``config.actors``: ``config.envs_per_actor`` envs (of ``env_factory``,
    default the run's env id) and a CPU copy of the online network, refreshed when `collect` is
    handed newer weights."""

    def __init__(self, config: TrainConfig, actor: int, env_factory: EnvFactory | None = None) -> None:
        torch.set_num_threads(1)  # one CPU per actor: a batch of envs' forward pass is small
        self.config, self.actor = config, actor
        self.incarnation = uuid.uuid4().hex
        self._seed = config.seed + 10_007 * (actor + 1)
        make = env_factory or (lambda num_envs, seed: make_run_env(config, num_envs, seed))
        self.env = make(config.envs_per_actor, self._seed)
        self.network = make_network(config, self.env).requires_grad_(False)
        self.weights_version = -1  # none loaded yet: acts with its random initial weights
        self.exploration = ActorExploration(config, actor)
        space = self.env.single_observation_space
        assert space.shape is not None and space.dtype is not None
        self.writer = ChunkWriter(config.envs_per_actor, space.shape, space.dtype, frame_stack_of(space))
        self.rows: TransitionFilter | None = None  # episodes start at the next collect
        self.rng = np.random.default_rng(self._seed)

    def collect(self, step: int, weights: Callable[[], dict[str, Any]], weights_version: int) -> ActorReport:
        """Step every env ``chunk_steps`` times at the run's env step ``step`` (for the epsilon
        schedule and the first episodes' seeds) with the online network's weights of version
        ``weights_version``, loaded from ``weights()`` when this actor acts with another one."""
        started = time.perf_counter()
        if weights_version != self.weights_version:
            self.network.load_state_dict(weights())
            self.weights_version = weights_version
        try:
            return self._collect(step, started)
        except BaseException:
            # The learner drops this call's rows and ends its streams' episodes: start new ones,
            # should this process be asked again before Ray replaces it.
            self.writer.take()
            self.writer.end_episodes()
            self.rows = None
            raise

    def _collect(self, step: int, started: float) -> ActorReport:
        if self.rows is None:
            # Seeded by the run's step: a restarted actor (or a resumed run) plays new episodes.
            seed = (self._seed + step) % MAX_SEED
            obs, _ = self.env.reset(seed=seed)
            self.rng = np.random.default_rng([self._seed, step])
            self.rows = TransitionFilter(self.config.envs_per_actor)
            self.rows.reset(obs)
        epsilon = self.exploration(step)
        returns: list[float] = []
        lengths: list[int] = []
        actions_count = num_actions(self.env)
        for _ in range(self.config.chunk_steps):
            actions = epsilon_greedy(self.network, self.rows.obs, epsilon, actions_count, self.rng)
            next_obs, rewards, terminated, truncated, infos = self.env.step(actions)
            t = self.rows.step(actions, rewards, next_obs, terminated, truncated)
            if len(t.env_ids):
                self.writer.add(
                    t.obs, t.action, t.reward, t.next_obs, t.terminated, t.truncated, env_ids=t.env_ids
                )
            for i in np.flatnonzero(infos[EPISODE_DONE]):
                returns.append(float(infos[EPISODE_RETURN][i]))
                lengths.append(int(infos[EPISODE_LENGTH][i]))
        return ActorReport(
            actor=self.actor,
            incarnation=self.incarnation,
            weights_version=self.weights_version,
            chunk=self.writer.take(),
            env_steps=self.config.chunk_steps * self.config.envs_per_actor,
            episode_returns=np.asarray(returns, dtype=np.float64),
            episode_lengths=np.asarray(lengths, dtype=np.int64),
            epsilon=epsilon,
            seconds=time.perf_counter() - started,
        )

    def close(self) -> None:
        self.env.close()
