"""The synchronous DQN training loop: step the envs, store transitions, update, log, checkpoint.

obs -> epsilon-greedy -> env.step -> TransitionFilter -> ReplayBuffer.add
                                                   \\-> every train_frequency steps:
                                                        ReplayBuffer.sample -> DQNLearner.update
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from pydqn.agent.placement import replay_device
from pydqn.agent.policy import LinearEpsilon, epsilon_greedy
from pydqn.device import resolve_device, torch_threads
from pydqn.envs import (
    EPISODE_DONE,
    EPISODE_LENGTH,
    EPISODE_RETURN,
    TransitionFilter,
    frames_per_step,
    num_actions,
)
from pydqn.replay import ReplayBuffer
from pydqn.runs import (
    CheckpointError,
    RunClaim,
    RunDirError,
    RunLayout,
    RunLogs,
    check_run_dir,
    load_checkpoint,
    save_checkpoint,
)
from pydqn.runs.files import write_atomically
from pydqn.runs.logs import METRIC_FIELDS
from pydqn.settings import MAX_SEED
from pydqn.training.components import make_buffer, make_learner, make_run_env
from pydqn.training.config import TrainConfig, annealed_beta, resumed_config, to_toml
from pydqn.training.evaluate import play_episodes
from pydqn.training.phase_clock import PhaseClock
from pydqn.training.progress import Progress
from pydqn.training.resume import ResumePoint, load_learner, read_resume_point


def _next_due(due: int, interval: int, step: int) -> int:
    """The first of ``due``, ``due + interval``, ... past ``step``: a chore that fell behind (a
    trainer whose step moves in chunks) runs once, not once per interval missed."""
    return due + (max(0, step - due) // interval + 1) * interval


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    updates: int
    episodes: int
    mean_return_100: float  # training episodes (exploring), the last 100
    best_eval: float  # best periodic evaluation's mean return (-inf when none ran)
    wall_time: float
    interrupted: bool
    # Time by phase (see PhaseClock; the async trainer adds up both threads' time), and the wall
    # time, env steps and updates it covers: from the first update on, when updates began in this
    # call, else the whole call.
    phase_seconds: dict[str, float]
    timed_seconds: float
    timed_steps: int
    timed_updates: int


class Trainer:
    """One training run: the env, learner and replay buffer of a configuration, the run directory's
    logs and checkpoints, and `run`, the loop that steps them to ``config.total_steps``.

    A new run needs a ``run_dir`` that holds no run (``overwrite=True`` deletes an old run's files
    first). ``resume=True`` continues the run in ``run_dir`` from its last checkpoint (a caller
    that has read it already passes the `ResumePoint`), with the configuration saved there, or with
    ``config`` when given, which may change only the resumable settings (see
    `pydqn.training.config.resumed_config`). The run directory is locked while the trainer lives:
    another process cannot train into it. Everything is built and checked before any file of the
    run is written, so a refused configuration or checkpoint leaves the folder as it was.

    ``synchronize_phases`` waits for the GPU at every phase boundary so that the phase times are
    exact (slower; for `pydqn bench --train`).
    """

    # Whether acting and learning use the buffer from two threads at once (see
    # pydqn.agent.placement: such a buffer stays on the host).
    shares_buffer_between_threads = False
    # The env steps at which the next metrics row, checkpoint and evaluation are due (see _begin).
    next_log: int
    next_checkpoint: int
    next_eval: int

    def __init__(
        self,
        config: TrainConfig | None,
        run_dir: Path,
        resume: bool | ResumePoint = False,
        synchronize_phases: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.layout = RunLayout(self.run_dir)
        point = read_resume_point(self.run_dir) if resume is True else resume or None
        if point is not None:
            config = point.config if config is None else resumed_config(point.config, config)
            if point.state["step"] >= config.total_steps:
                raise RunDirError(
                    f"run_dir: {self.run_dir} has trained its total_steps={config.total_steps:,} "
                    f"(step {point.state['step']:,}); extend it with a larger total_steps "
                    "(--total-steps N)"
                )
        elif config is None:
            raise ValueError("config: expected a TrainConfig when not resuming")
        self.config = config = config.validate()
        self.device = resolve_device(config.device)
        check_run_dir(self.run_dir, resume=point is not None, overwrite=overwrite)  # before the costly part
        self._claim: RunClaim | None = None
        try:
            self._build(config, point)
            self._claim = RunClaim(self.run_dir, resume=point is not None, overwrite=overwrite)
            if point is not None:
                point.check_unchanged()
            write_atomically(self.layout.config, lambda file: file.write(to_toml(config).encode()), "config")
            self.logs = RunLogs(self.run_dir, config.tensorboard, self.metric_fields())
        except BaseException:
            self._close_resources()
            if self._claim is not None:
                self._claim.abandon()
            raise
        # Waiting for the GPU at phase boundaries makes phase times exact (and the loop slower).
        # For the calling thread's stream, where its work goes, not the whole device: the async
        # actor's clock must not wait on (and so break) the learner's CUDA-graph capture.
        device = self.device
        self.phase_sync = (
            (lambda: torch.cuda.current_stream(device).synchronize())
            if synchronize_phases and device.type == "cuda"
            else None
        )
        self.clock = PhaseClock(self.phase_sync)

    def _build(self, config: TrainConfig, point: ResumePoint | None) -> None:
        """The envs, learner and buffer of ``config``, restored from ``point`` when resuming."""
        torch.set_num_threads(torch_threads(config.torch_threads))
        torch.manual_seed(config.seed)
        self.env = self.make_env(self.local_envs, config.seed)
        self.learner = make_learner(config, self.env, self.device)
        self.buffer = make_buffer(
            config,
            self.env,
            replay_device(
                self.device,
                cpp_buffer=config.replay == "cpp",
                shared_by_threads=self.shares_buffer_between_threads,
            ),
        )
        self.rng = np.random.default_rng(config.seed)
        self.metrics: dict[str, torch.Tensor] = {}  # the last update's
        self.step, self.episodes, self.best_eval = 0, 0, float("-inf")
        self.updates_from = config.learning_starts  # env step of the first update
        if point is not None:
            self._restore(point)
        self.epsilon: Callable[[int], float] = LinearEpsilon(
            config.epsilon_start, config.epsilon_end, config.epsilon_fraction, config.schedule_length
        )
        self.eval_env = (
            self.make_env(min(config.eval_episodes, 8), config.seed + 1_000_003)
            if config.eval_interval
            else None
        )

    @property
    def local_envs(self) -> int:
        """Envs this process steps for training (the Ape-X trainer's actors step theirs)."""
        return self.config.num_envs

    def make_env(self, num_envs: int, seed: int) -> VectorEnv:
        """``num_envs`` envs of the run's env id, for training or evaluation."""
        return make_run_env(self.config, num_envs, seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The epsilon-greedy actions for a batch of observations, at the current step's epsilon."""
        return self.act_with(self.learner.online, obs)

    def act_with(self, network: torch.nn.Module, obs: np.ndarray) -> np.ndarray:
        """`act` with ``network``'s greedy actions."""
        return epsilon_greedy(
            network, obs, self.epsilon(self.step), num_actions(self.env), self.rng, self.device
        )

    def run(self) -> TrainResult:
        """Train until ``config.total_steps`` env steps; Ctrl-C checkpoints and returns normally
        (``interrupted=True``)."""
        config, clock = self.config, self.clock
        self._begin()
        updates_due, timed_from, interrupted = 0.0, None, False
        clock.restart()
        try:
            while self.step < config.total_steps:
                self.collect(clock)
                if self.step >= self.updates_from:
                    if timed_from is None:  # time the regime the run spends its life in
                        timed_from = (self.step, self.learner.updates)
                        clock.restart()
                    updates_due += config.num_envs / config.train_frequency
                    while updates_due >= 1.0:
                        self.learn(clock)
                        updates_due -= 1.0
                self.progress.update(self.step, self.learner.updates, self.epsilon(self.step))
                self.do_chores()
                clock.lap("other")
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self.save()
            self.progress.update(self.step, self.learner.updates, self.epsilon(self.step), force=True)
        return self._result(interrupted, clock.seconds, sum(clock.seconds.values()), timed_from)

    def collect(self, clock: PhaseClock) -> None:
        """One step of every env: act, step the envs, store the transitions, log ended episodes."""
        actions = self.act(self.rows.obs)
        clock.lap("acting")
        next_obs, rewards, terminated, truncated, infos = self.env.step(actions)
        t = self.rows.step(actions, rewards, next_obs, terminated, truncated)
        clock.lap("env")
        if len(t.env_ids):
            self.buffer.add(
                t.obs, t.action, t.reward, t.next_obs, t.terminated, t.truncated, env_ids=t.env_ids
            )
            clock.lap("buffer")
        self.step += self.config.num_envs
        for i in np.flatnonzero(infos[EPISODE_DONE]):
            self.episodes += 1
            self.progress.episode(float(infos[EPISODE_RETURN][i]))
            self.logs.episode(
                step=self.step,
                **{"return": float(infos[EPISODE_RETURN][i])},
                length=int(infos[EPISODE_LENGTH][i]),
                wall_time=self._wall_time(),
            )

    def learn(self, clock: PhaseClock) -> None:
        """One update on a sampled batch; with prioritized replay, the batch's priorities become
        its |TD errors| (from before the update's gradient step) plus priority_epsilon."""
        config = self.config
        beta = self.priority_beta(self.step) if config.prioritized else None
        batch = self.buffer.sample(config.batch_size, beta=beta)
        clock.lap("buffer")
        self.metrics = self.learner.update(batch)
        clock.lap("learning")
        if config.prioritized:  # update_priorities takes them on the learner's device
            td_error = self.metrics["td_error"].abs().double()
            self.buffer.update_priorities(batch.transition_ids, td_error + config.priority_epsilon)
            clock.lap("buffer")

    def priority_beta(self, step: int) -> float:
        """Prioritized replay's importance-sampling exponent: priority_beta at step 0, annealed
        linearly to 1 at the schedule's end (``config.schedule_length``)."""
        return annealed_beta(self.config.priority_beta, step / self.config.schedule_length)

    def chores_due(self) -> bool:
        return (
            self.step >= self.next_log
            or self.step >= self.next_checkpoint
            or (self.eval_env is not None and self.step >= self.next_eval)
        )

    def do_chores(self) -> None:
        """Log training metrics, checkpoint and evaluate, each when its interval is due."""
        config = self.config
        if self.step >= self.next_log:
            self.next_log = _next_due(self.next_log, config.log_interval, self.step)
            self._log_metrics()
        if self.step >= self.next_checkpoint:
            self.next_checkpoint = _next_due(self.next_checkpoint, config.checkpoint_interval, self.step)
            self.save()
        if self.eval_env is not None and self.step >= self.next_eval:
            self.next_eval = _next_due(self.next_eval, config.eval_interval, self.step)
            self._evaluate()

    def _begin(self) -> None:
        """Start new episodes and the interval counters."""
        config = self.config
        self.progress = Progress(
            config.total_steps, self.step, frames_per_step(config.env_id), start_updates=self.learner.updates
        )
        self.started = time.perf_counter()
        self._start_episodes()
        self.metrics = {}
        self.next_log = self.step + config.log_interval
        self.next_checkpoint = self.step + config.checkpoint_interval
        self.next_eval = self.step + config.eval_interval
        self._last_log = (self.started, self.step, self.learner.updates)

    def _start_episodes(self) -> None:
        """Reset the envs (env state is not checkpointed: a resumed run starts new episodes, seeded
        by its step, wrapped to the seeds envs accept)."""
        obs, _ = self.env.reset(seed=(self.config.seed + self.step) % MAX_SEED)
        self.rows = TransitionFilter(self.config.num_envs)
        self.rows.reset(obs)

    def _result(
        self,
        interrupted: bool,
        phase_seconds: dict[str, float],
        timed_seconds: float,
        timed_from: tuple[int, int] | None,
    ) -> TrainResult:
        steps, updates = timed_from or (self.step, self.learner.updates)
        return TrainResult(
            self.run_dir,
            self.step,
            self.learner.updates,
            self.episodes,
            self.progress.mean_return(),
            self.best_eval,
            self._wall_time(),
            interrupted,
            dict(phase_seconds),
            timed_seconds,
            self.step - steps,
            self.learner.updates - updates,
        )

    def _wall_time(self) -> float:
        return round(time.perf_counter() - self.started, 3)

    def save(self, path: Path | None = None) -> None:
        """Checkpoint the run to ``path`` (default: the run's checkpoint.pt, preceded by its replay
        buffer when ``save_buffer`` is on; both files are written atomically)."""
        if path is None:
            path = self.layout.checkpoint
            if self.config.save_buffer:
                assert isinstance(self.buffer, ReplayBuffer)  # the config requires it
                save_checkpoint(
                    self.layout.replay, {"step": self.step, "buffer": self.buffer.state_dict()}, "replay"
                )
        save_checkpoint(
            path,
            {
                "config": to_toml(self.config),
                "learner": self.learner.state_dict(),
                "step": self.step,
                "episodes": self.episodes,
                "best_eval": self.best_eval,
                "rng": self.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
            },
            "checkpoint" if path == self.layout.checkpoint else path.stem,
        )

    def close(self) -> None:
        """Close the logs and envs and release the run directory (whatever fails on the way)."""
        try:
            self.logs.close()
        finally:
            self._close_resources()
            assert self._claim is not None
            self._claim.release()

    def _close_resources(self) -> None:
        """Close what `_build` opened (envs), whether or not the run started."""
        for env in (getattr(self, "env", None), getattr(self, "eval_env", None)):
            if env is not None:  # None: not built (a refused start) or no evaluations
                env.close()

    def _restore(self, point: ResumePoint) -> None:
        state = point.state
        load_learner(self.learner, point)
        self.step, self.episodes = state["step"], state["episodes"]
        self.best_eval = state["best_eval"]
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        # Without the saved buffer, refill it with learning_starts steps before updating again.
        self.updates_from = self.step + self.config.learning_starts
        replay = self.layout.replay
        if self.config.save_buffer and replay.is_file():
            saved = load_checkpoint(replay)
            if saved.get("step") == self.step:
                assert isinstance(self.buffer, ReplayBuffer)  # the config requires it
                try:
                    buffer_state = saved.get("buffer")
                    if not isinstance(buffer_state, dict):
                        raise ValueError(f"buffer: expected a state dict, got {type(buffer_state).__name__}")
                    self.buffer.load_state_dict(buffer_state)
                except (ValueError, TypeError) as error:
                    raise CheckpointError(
                        f"replay: {replay} does not fit this run's buffer ({error}); delete it to "
                        "resume with a buffer refilled by learning_starts steps"
                    ) from None
                self.updates_from = self.step
            else:  # a crash between writing the buffer and the checkpoint
                print(
                    f"pydqn: {replay} is from step {saved.get('step')}, the checkpoint from step "
                    f"{self.step}; refilling the buffer instead"
                )

    def metric_fields(self) -> tuple[str, ...]:
        """The columns of metrics.csv (`_metric_row`'s keys)."""
        return METRIC_FIELDS

    def _log_metrics(self) -> None:
        self.logs.metrics(**self._metric_row())

    def _metric_row(self) -> dict[str, float]:
        """A metrics row; its rates are over the time since the previous row."""
        metrics, now = self.metrics, time.perf_counter()
        last_time, last_step, last_updates = self._last_log
        elapsed = max(now - last_time, 1e-9)
        self._last_log = (now, self.step, self.learner.updates)
        return dict(
            step=self.step,
            updates=self.learner.updates,
            loss=float(metrics["loss"]) if metrics else float("nan"),
            q_mean=float(metrics["q_mean"]) if metrics else float("nan"),
            epsilon=round(self.epsilon(self.step), 4),
            fps=round((self.step - last_step) * self.progress.frames_per_step / elapsed, 1),
            updates_per_s=round((self.learner.updates - last_updates) / elapsed, 1),
            wall_time=self._wall_time(),
        )

    def _evaluate(self) -> None:
        """Play the periodic evaluation episodes; keep the best policy so far as best.pt."""
        returns = play_episodes(
            self.learner.online,
            self.eval_env,
            self.config.eval_episodes,
            self.config.eval_epsilon,
            self.rng,
            self.device,
        )
        improved = returns.mean() >= self.best_eval
        if improved:
            self.best_eval = float(returns.mean())
            self.save(self.layout.best)
        self.progress.evaluation(self.step, float(returns.mean()), len(returns), improved)
        self.logs.evaluation(
            step=self.step,
            mean_return=round(float(returns.mean()), 3),
            std_return=round(float(returns.std()), 3),
            episodes=len(returns),
            best=int(improved),
            wall_time=self._wall_time(),
        )
