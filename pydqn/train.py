"""The synchronous DQN training loop: step the envs, store transitions, update, log, checkpoint.

    obs -> epsilon-greedy -> env.step -> TransitionFilter -> ReplayBuffer.add
                                                       \\-> every train_frequency steps:
                                                            ReplayBuffer.sample -> DQNLearner.update
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pydqn.checkpoint import load_checkpoint, save_checkpoint
from pydqn.components import is_atari, make_buffer, make_learner, make_run_env, resolve_device
from pydqn.config import TrainConfig, parse_config, to_toml
from pydqn.envs import EPISODE_DONE, EPISODE_LENGTH, EPISODE_RETURN, TransitionFilter
from pydqn.evaluate import BEST, CHECKPOINT, play_episodes
from pydqn.phase_clock import PhaseClock
from pydqn.policy import LinearEpsilon, epsilon_greedy
from pydqn.run_log import Progress, RunLogs

REPLAY = "replay.pt"  # the replay buffer of the last checkpoint, with save_buffer on


@dataclass
class TrainResult:
    steps: int
    updates: int
    episodes: int
    mean_return_100: float  # training episodes (exploring), the last 100
    best_eval: float  # best periodic evaluation's mean return (-inf when none ran)
    wall_time: float
    interrupted: bool
    # Wall time by phase (see PhaseClock) and the env steps and updates it covers: from the first
    # update on, when updates began in this call, else the whole call.
    phase_seconds: dict[str, float]
    timed_steps: int
    timed_updates: int


class Trainer:
    """One training run: the env, learner and replay buffer of a configuration, the run directory's
    logs and checkpoints, and `run`, the loop that steps them to ``config.total_steps``.

    ``Trainer(None, run_dir, resume=True)`` continues the run in ``run_dir`` from its last
    checkpoint, with the configuration saved there. ``synchronize_phases`` waits for the GPU at
    every phase boundary so that the phase times are exact (slower; for `pydqn bench --train`).
    """

    def __init__(self, config: TrainConfig | None, run_dir: Path, resume: bool = False,
                 synchronize_phases: bool = False) -> None:
        self.run_dir = Path(run_dir)
        state = load_checkpoint(self.run_dir / CHECKPOINT) if resume else None
        if state is not None:
            config = parse_config(state["config"])
        elif config is None:
            raise ValueError("config: expected a TrainConfig when not resuming")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.toml").write_text(to_toml(config))
        self.config = config
        self.device = resolve_device(config.device)
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        torch.manual_seed(config.seed)
        self.env = make_run_env(config, config.num_envs, config.seed)
        self.learner = make_learner(config, self.env, self.device)
        self.buffer = make_buffer(config, self.env)
        self.rng = np.random.default_rng(config.seed)
        self.step, self.episodes, self.best_eval = 0, 0, float("-inf")
        self.updates_from = config.learning_starts  # env step of the first update
        if state is not None:
            self._restore(state)
        self.epsilon = LinearEpsilon(config.epsilon_start, config.epsilon_end,
                                     config.epsilon_fraction, config.total_steps)
        self.eval_env = (make_run_env(config, min(config.eval_episodes, 8), config.seed + 1_000_003)
                         if config.eval_interval else None)
        self.logs = RunLogs(self.run_dir, config.tensorboard)
        synchronize = torch.cuda.synchronize if synchronize_phases and self.device.type == "cuda" else None
        self.clock = PhaseClock(synchronize)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The epsilon-greedy actions for a batch of observations, at the current step's epsilon."""
        return epsilon_greedy(self.learner.online, obs, self.epsilon(self.step),
                              int(self.env.single_action_space.n), self.rng, self.device)

    def run(self) -> TrainResult:
        """Train until ``config.total_steps`` env steps; Ctrl-C checkpoints and returns normally
        (``interrupted=True``)."""
        config, clock = self.config, self.clock
        progress = Progress(config.total_steps, self.step, 4 if is_atari(config) else 1)
        started = time.perf_counter()
        # Env state is not checkpointed: a resumed run starts new episodes, seeded by its step.
        obs, _ = self.env.reset(seed=config.seed + self.step)
        rows = TransitionFilter(config.num_envs)
        rows.reset(obs)
        updates_due, metrics = 0.0, {}
        next_log = self.step + config.log_interval
        next_checkpoint = self.step + config.checkpoint_interval
        next_eval = self.step + config.eval_interval
        timed_from = (self.step, self.learner.updates)
        timing_updates, interrupted = False, False
        clock.restart()
        try:
            while self.step < config.total_steps:
                actions = self.act(rows.obs)
                clock.lap("acting")
                next_obs, rewards, terminated, truncated, infos = self.env.step(actions)
                t = rows.step(actions, rewards, next_obs, terminated, truncated)
                clock.lap("env")
                if len(t.env_ids):
                    self.buffer.add(t.obs, t.action, t.reward, t.next_obs, t.terminated,
                                    t.truncated, env_ids=t.env_ids)
                    clock.lap("buffer")
                self.step += config.num_envs
                self._log_episodes(infos, progress, started)
                if self.step >= self.updates_from:
                    if not timing_updates:  # time the regime the run spends its life in
                        timing_updates, timed_from = True, (self.step, self.learner.updates)
                        clock.restart()
                    updates_due += config.num_envs / config.train_frequency
                    while updates_due >= 1.0:
                        batch = self.buffer.sample(config.batch_size)
                        clock.lap("buffer")
                        metrics = self.learner.update(batch)
                        clock.lap("learning")
                        updates_due -= 1.0
                progress.update(self.step, self.learner.updates, self.epsilon(self.step))
                if self.step >= next_log:
                    next_log += config.log_interval
                    self._log_metrics(metrics, progress, started)
                if self.step >= next_checkpoint:
                    next_checkpoint += config.checkpoint_interval
                    self.save()
                if self.eval_env is not None and self.step >= next_eval:
                    next_eval += config.eval_interval
                    self._evaluate(started)
                clock.lap("other")
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self.save()
            progress.update(self.step, self.learner.updates, self.epsilon(self.step), force=True)
        return TrainResult(self.step, self.learner.updates, self.episodes, progress.mean_return(),
                           self.best_eval, time.perf_counter() - started, interrupted,
                           dict(clock.seconds), self.step - timed_from[0],
                           self.learner.updates - timed_from[1])

    def save(self, path: Path | None = None) -> None:
        """Checkpoint the run to ``path`` (default: the run's checkpoint.pt, preceded by its replay
        buffer when ``save_buffer`` is on; both files are written atomically)."""
        if path is None:
            path = self.run_dir / CHECKPOINT
            if self.config.save_buffer:
                save_checkpoint(self.run_dir / REPLAY,
                                {"step": self.step, "buffer": self.buffer.state_dict()})
        save_checkpoint(path, {
            "config": to_toml(self.config), "learner": self.learner.state_dict(),
            "step": self.step, "episodes": self.episodes, "best_eval": self.best_eval,
            "rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state()})

    def close(self) -> None:
        self.logs.close()
        self.env.close()
        if self.eval_env is not None:
            self.eval_env.close()

    def _restore(self, state: dict) -> None:
        self.learner.load_state_dict(state["learner"])
        self.step, self.episodes = int(state["step"]), int(state["episodes"])
        self.best_eval = float(state.get("best_eval", self.best_eval))
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        # Without the saved buffer, refill it with learning_starts steps before updating again.
        self.updates_from = self.step + self.config.learning_starts
        replay = self.run_dir / REPLAY
        if self.config.save_buffer and replay.is_file():
            saved = load_checkpoint(replay)
            if saved["step"] == self.step:
                self.buffer.load_state_dict(saved["buffer"])
                self.updates_from = self.step
            else:  # a crash between writing the buffer and the checkpoint
                print(f"pydqn: {replay} is from step {saved['step']}, the checkpoint from step "
                      f"{self.step}; refilling the buffer instead")

    def _log_episodes(self, infos: dict, progress: Progress, started: float) -> None:
        for i in np.flatnonzero(infos[EPISODE_DONE]):
            self.episodes += 1
            progress.episode(float(infos[EPISODE_RETURN][i]))
            self.logs.episode(step=self.step, **{"return": float(infos[EPISODE_RETURN][i])},
                              length=int(infos[EPISODE_LENGTH][i]),
                              wall_time=round(time.perf_counter() - started, 3))

    def _log_metrics(self, metrics: dict[str, torch.Tensor], progress: Progress,
                     started: float) -> None:
        self.logs.metrics(step=self.step, updates=self.learner.updates,
                          loss=float(metrics["loss"]) if metrics else float("nan"),
                          q_mean=float(metrics["q_mean"]) if metrics else float("nan"),
                          epsilon=round(self.epsilon(self.step), 4), fps=round(progress.fps, 1),
                          updates_per_s=round(progress.updates_per_s, 1),
                          wall_time=round(time.perf_counter() - started, 3))

    def _evaluate(self, started: float) -> None:
        """Play the periodic evaluation episodes; keep the best policy so far as best.pt."""
        returns = play_episodes(self.learner.online, self.eval_env, self.config.eval_episodes,
                                self.config.eval_epsilon, self.rng, self.device)
        improved = returns.mean() >= self.best_eval
        if improved:
            self.best_eval = float(returns.mean())
            self.save(self.run_dir / BEST)
        self.logs.evaluation(step=self.step, mean_return=round(float(returns.mean()), 3),
                             std_return=round(float(returns.std()), 3), episodes=len(returns),
                             best=int(improved), wall_time=round(time.perf_counter() - started, 3))


def train(config: TrainConfig | None, run_dir: Path, resume: bool = False) -> TrainResult:
    """Train per ``config``, recording into ``run_dir``; ``resume=True`` continues the run in
    ``run_dir`` from its last checkpoint (``config`` unused). See `Trainer`."""
    trainer = Trainer(config, run_dir, resume)
    try:
        return trainer.run()
    finally:
        trainer.close()
