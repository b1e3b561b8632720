"""Playing a trained agent: evaluation episodes, from a checkpoint, optionally recorded as video."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pydqn.agent.policy import epsilon_greedy
from pydqn.device import resolve_device
from pydqn.envs import EMULATOR_FPS, EPISODE_DONE, EPISODE_RETURN, frames_per_step, is_atari_id, num_actions
from pydqn.runs import RunLayout
from pydqn.settings import EPISODE_COUNTS, SEEDS, UNIT, check_setting
from pydqn.training.components import make_learner, make_run_env
from pydqn.training.resume import load_learner, read_run_checkpoint


def play_episodes(
    q_network: torch.nn.Module,
    env,
    episodes: int,
    epsilon: float,
    rng: np.random.Generator,
    device: torch.device | str,
    after_step: Callable[[], None] | None = None,
) -> np.ndarray:
    """Raw game returns of ``episodes`` epsilon-greedy episodes on ``env``, from a fresh reset.
    ``after_step()`` is called after the reset and after every step (to record frames)."""
    returns: list[float] = []
    obs, _ = env.reset()
    action_count = num_actions(env)
    while len(returns) < episodes:
        if after_step is not None:
            after_step()
        actions = epsilon_greedy(q_network, obs, epsilon, action_count, rng, device)
        obs, _, _, _, infos = env.step(actions)
        returns += [float(r) for r in infos[EPISODE_RETURN][infos[EPISODE_DONE]]]
    if after_step is not None:
        after_step()
    return np.asarray(returns[:episodes])


def checkpoint_to_evaluate(run_dir_or_checkpoint: Path) -> Path:
    """A checkpoint file as given, or a run directory's best policy (else its last checkpoint)."""
    path = Path(run_dir_or_checkpoint)
    if not path.is_dir():
        return path
    layout = RunLayout(path)
    return layout.best if layout.best.is_file() else layout.checkpoint


def evaluate(
    run_dir_or_checkpoint: Path,
    episodes: int = 10,
    epsilon: float | None = None,
    seed: int = 12345,
    device: str = "cpu",
    video: Path | None = None,
) -> np.ndarray:
    """Raw game returns of ``episodes`` episodes played with a checkpoint's online network (a run
    directory's best.pt when it has one, else its checkpoint.pt).

    With ``video`` (a path such as ``play.mp4``; needs the ``video`` extra) every frame of every
    episode is written there, in real time; the episodes are then played one at a time.

    Raises `SettingError` for an argument of the wrong type or range (``epsilon`` outside [0, 1],
    ...), ValueError for a device this machine lacks, `CheckpointError` naming the file for a
    missing, damaged or foreign checkpoint.
    """
    episodes = check_setting("episodes", int, episodes, EPISODE_COUNTS)
    epsilon = check_setting("epsilon", float | None, epsilon, UNIT)
    seed = check_setting("seed", int, seed, SEEDS)
    resolve_device(device)
    point = read_run_checkpoint(checkpoint_to_evaluate(run_dir_or_checkpoint))
    config = point.config
    num_envs = 1 if video is not None else min(episodes, 8)
    config = dataclasses.replace(config, num_envs=num_envs, seed=seed)
    writer, options = None, dict[str, Any]()
    if video is not None:
        from pydqn.report.video import VideoWriter

        if is_atari_id(config.env_id):
            options = {"backend": "gymnasium", "render_mode": "rgb_array"}
        else:
            # pygame draws these frames off screen; without a display SDL would complain.
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            options = {"env_kwargs": {"render_mode": "rgb_array"}}
    env = make_run_env(config, num_envs, seed, **options)
    try:
        learner = make_learner(config, env, resolve_device(device))
        load_learner(learner, point)
        after_step: Callable[[], None] | None = None
        if video is not None:
            # A video frame is one agent step.
            fps = (
                EMULATOR_FPS / frames_per_step(config.env_id)
                if is_atari_id(config.env_id)
                else env.metadata.get("render_fps", 30)
            )
            writer = recording = VideoWriter(video, fps)

            def after_step() -> None:
                frames: Any = env.render()  # one RGB frame per env (there is one)
                recording.add(frames[0])

        eps = config.eval_epsilon if epsilon is None else epsilon
        returns = play_episodes(
            learner.online, env, episodes, eps, np.random.default_rng(seed), device, after_step
        )
        if writer is not None:
            writer = None
            recording.close()
        return returns
    finally:
        env.close()
        if writer is not None:  # the episodes did not finish: no partial video
            writer.close(keep=False)
