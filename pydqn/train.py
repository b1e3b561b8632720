"""The synchronous DQN training loop: step the envs, store transitions, update, log, checkpoint.

    obs -> epsilon-greedy -> env.step -> TransitionFilter -> ReplayBuffer.add
                                                       \\-> every train_frequency steps:
                                                            ReplayBuffer.sample -> DQNLearner.update
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pydqn.checkpoint import load_checkpoint, save_checkpoint
from pydqn.config import TrainConfig, parse_config, to_toml
from pydqn.dqn import DQNLearner
from pydqn.envs import EPISODE_DONE, EPISODE_LENGTH, EPISODE_RETURN, TransitionFilter, make_env
from pydqn.models import make_q_network
from pydqn.policy import LinearEpsilon, epsilon_greedy
from pydqn.replay import ReplayBuffer
from pydqn.run_log import EPISODE_FIELDS, EVAL_FIELDS, METRIC_FIELDS, CsvLog, Progress

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"  # the policy that scored best in the periodic evaluations


@dataclass
class TrainResult:
    steps: int
    updates: int
    episodes: int
    mean_return_100: float  # training episodes (exploring), the last 100
    best_eval: float  # best periodic evaluation's mean return (-inf when none ran)
    wall_time: float
    interrupted: bool


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_run_env(config: TrainConfig, num_envs: int, seed: int):
    options = ({"repeat_action_probability": config.repeat_action_probability}
               if config.env_id.startswith("ALE/") else {})
    return make_env(config.env_id, num_envs, seed=seed, **options)


def make_components(config: TrainConfig, device: torch.device):
    """The env and the learner of a run (also what `evaluate` rebuilds from a checkpoint)."""
    env = make_run_env(config, config.num_envs, config.seed)
    network = make_q_network(env.single_observation_space, env.single_action_space,
                             dueling=config.dueling, hidden_sizes=config.hidden_sizes)
    return env, DQNLearner(network, config.learner, device)


def make_buffer(config: TrainConfig, env) -> ReplayBuffer:
    space = env.single_observation_space
    frame_stack = space.shape[0] if len(space.shape) == 3 else 1
    return ReplayBuffer(config.buffer_size, space.shape, torch.from_numpy(np.zeros(0, space.dtype)).dtype,
                        frame_stack=frame_stack, num_envs=config.num_envs, seed=config.seed)


def train(config: TrainConfig | None, run_dir: Path, resume: bool = False) -> TrainResult:
    """Train per ``config``, recording into ``run_dir``; ``resume=True`` continues the run in
    ``run_dir`` from its last checkpoint, with the configuration saved there (``config`` unused).

    Ctrl-C writes a checkpoint and returns normally (``interrupted=True``).
    """
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir / CHECKPOINT) if resume else None
    if state is not None:
        config = parse_config(state["config"])
    elif config is None:
        raise ValueError("config: expected a TrainConfig when not resuming")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(to_toml(config))
    device = resolve_device(config.device)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    env, learner = make_components(config, device)
    buffer = make_buffer(config, env)
    rng = np.random.default_rng(config.seed)
    step, episodes, best_eval = 0, 0, float("-inf")
    if state is not None:
        learner.load_state_dict(state["learner"])
        step, episodes = int(state["step"]), int(state["episodes"])
        best_eval = float(state.get("best_eval", best_eval))
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
    # A resumed run refills the buffer with learning_starts steps before updating again.
    updates_from = step + config.learning_starts
    epsilon = LinearEpsilon(config.epsilon_start, config.epsilon_end, config.epsilon_fraction,
                            config.total_steps)
    num_actions = int(env.single_action_space.n)
    episode_log = CsvLog(run_dir / "episodes.csv", EPISODE_FIELDS)
    metric_log = CsvLog(run_dir / "metrics.csv", METRIC_FIELDS)
    eval_log = CsvLog(run_dir / "evals.csv", EVAL_FIELDS)
    eval_env = (make_run_env(config, min(config.eval_episodes, 8), config.seed + 1_000_003)
                if config.eval_interval else None)
    next_eval = step + config.eval_interval
    frames_per_step = 4 if config.env_id.startswith("ALE/") else 1
    progress = Progress(config.total_steps, step, frames_per_step)
    started = time.perf_counter()
    # Env state is not checkpointed: a resumed run starts new episodes, seeded by its step.
    obs, _ = env.reset(seed=config.seed + step)
    rows = TransitionFilter(config.num_envs)
    rows.reset(obs)
    updates_due, next_log, next_checkpoint = 0.0, step + config.log_interval, step + config.checkpoint_interval
    metrics: dict[str, torch.Tensor] = {}
    interrupted = False

    def checkpoint(path: Path = run_dir / CHECKPOINT) -> None:
        save_checkpoint(path, {
            "config": to_toml(config), "learner": learner.state_dict(), "step": step,
            "episodes": episodes, "best_eval": best_eval, "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state()})

    try:
        while step < config.total_steps:
            eps = epsilon(step)
            actions = epsilon_greedy(learner.online, rows.obs, eps, num_actions, rng, device)
            next_obs, rewards, terminated, truncated, infos = env.step(actions)
            t = rows.step(actions, rewards, next_obs, terminated, truncated)
            if len(t.env_ids):
                buffer.add(t.obs, t.action, t.reward, t.next_obs, t.terminated, t.truncated,
                           env_ids=t.env_ids)
            step += config.num_envs
            for i in np.flatnonzero(infos[EPISODE_DONE]):
                episodes += 1
                progress.episode(float(infos[EPISODE_RETURN][i]))
                episode_log.write(step=step, **{"return": float(infos[EPISODE_RETURN][i])},
                                  length=int(infos[EPISODE_LENGTH][i]),
                                  wall_time=round(time.perf_counter() - started, 3))
            if step >= updates_from:
                updates_due += config.num_envs / config.train_frequency
                while updates_due >= 1.0:
                    metrics = learner.update(buffer.sample(config.batch_size))
                    updates_due -= 1.0
            progress.update(step, learner.updates, eps)
            if step >= next_log:
                next_log += config.log_interval
                metric_log.write(step=step, updates=learner.updates,
                                 loss=float(metrics["loss"]) if metrics else float("nan"),
                                 q_mean=float(metrics["q_mean"]) if metrics else float("nan"),
                                 epsilon=round(eps, 4), fps=round(progress.fps, 1),
                                 updates_per_s=round(progress.updates_per_s, 1),
                                 wall_time=round(time.perf_counter() - started, 3))
            if step >= next_checkpoint:
                next_checkpoint += config.checkpoint_interval
                checkpoint()
            if eval_env is not None and step >= next_eval:
                next_eval += config.eval_interval
                returns = play_episodes(learner.online, eval_env, config.eval_episodes,
                                        config.eval_epsilon, rng, device)
                improved = returns.mean() >= best_eval
                if improved:
                    best_eval = float(returns.mean())
                    checkpoint(run_dir / BEST)
                eval_log.write(step=step, mean_return=round(float(returns.mean()), 3),
                               std_return=round(float(returns.std()), 3), episodes=len(returns),
                               best=int(improved), wall_time=round(time.perf_counter() - started, 3))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        checkpoint()
        progress.update(step, learner.updates, epsilon(step), force=True)
        for log in (episode_log, metric_log, eval_log):
            log.close()
        env.close()
        if eval_env is not None:
            eval_env.close()
    return TrainResult(step, learner.updates, episodes, progress.mean_return(), best_eval,
                       time.perf_counter() - started, interrupted)


def play_episodes(q_network: torch.nn.Module, env, episodes: int, epsilon: float,
                  rng: np.random.Generator, device: torch.device | str) -> np.ndarray:
    """Raw game returns of ``episodes`` epsilon-greedy episodes on ``env``, from a fresh reset."""
    returns: list[float] = []
    obs, _ = env.reset()
    num_actions = int(env.single_action_space.n)
    while len(returns) < episodes:
        actions = epsilon_greedy(q_network, obs, epsilon, num_actions, rng, device)
        obs, _, _, _, infos = env.step(actions)
        returns += [float(r) for r in infos[EPISODE_RETURN][infos[EPISODE_DONE]]]
    return np.asarray(returns[:episodes])


def checkpoint_to_evaluate(run_dir_or_checkpoint: Path) -> Path:
    """A checkpoint file as given, or a run directory's best policy (else its last checkpoint)."""
    path = Path(run_dir_or_checkpoint)
    if not path.is_dir():
        return path
    return path / BEST if (path / BEST).is_file() else path / CHECKPOINT


def evaluate(run_dir_or_checkpoint: Path, episodes: int = 10, epsilon: float | None = None,
             seed: int = 12345, device: str = "cpu") -> np.ndarray:
    """Raw game returns of ``episodes`` episodes played with a checkpoint's online network (a run
    directory's best.pt when it has one, else its checkpoint.pt)."""
    state = load_checkpoint(checkpoint_to_evaluate(run_dir_or_checkpoint))
    config = dataclasses.replace(parse_config(state["config"]), num_envs=min(episodes, 8), seed=seed)
    env, learner = make_components(config, torch.device(device))
    learner.load_state_dict(state["learner"])
    eps = config.eval_epsilon if epsilon is None else epsilon
    returns = play_episodes(learner.online, env, episodes, eps, np.random.default_rng(seed), device)
    env.close()
    return returns
