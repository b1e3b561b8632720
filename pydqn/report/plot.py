"""The learning curve of a run: episode returns and their running mean, against env steps and
wall time, with the periodic evaluations when there are any. Needs matplotlib (`pydqn[plot]`)."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

import numpy as np

from pydqn.runs.files import write_atomically
from pydqn.runs.layout import RunLayout


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    return {key: np.array([float(row[key]) for row in rows]) for key in (rows[0] if rows else {})}


def _env_id(config: Path) -> str | None:
    """The run's env id from its config.toml, if it has a readable one."""
    try:
        with open(config, "rb") as file:
            env_id = tomllib.load(file).get("env_id")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return env_id if isinstance(env_id, str) else None


def running_mean(values: np.ndarray, window: int = 100) -> np.ndarray:
    """Mean of the last ``window`` values at each position (fewer at the start)."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def plot_run(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's learning curve as a PNG (default ``RUN_DIR/learning_curve.png``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError(
            "plot: matplotlib is not installed; `pip install matplotlib` (or pydqn[plot])"
        ) from None
    layout = RunLayout(run_dir)
    if not layout.root.is_dir():
        raise ValueError(f"run_dir: {layout.root} does not exist or is not a folder")
    episodes = _read(layout.episodes)
    if not episodes or len(episodes["step"]) == 0:
        raise ValueError(f"run_dir: {layout.episodes} holds no finished episode yet")
    evals = _read(layout.evals)
    title = layout.root.name
    env = _env_id(layout.config)
    if env:
        title = f"{env} ({layout.root.name})"
    mean = running_mean(episodes["return"])
    figure, (by_step, by_time) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for axis, x, label in (
        (by_step, episodes["step"], "env steps"),
        (by_time, episodes["wall_time"] / 60.0, "wall time (minutes)"),
    ):
        axis.plot(x, episodes["return"], ".", markersize=2, alpha=0.3, label="episode return")
        axis.plot(x, mean, linewidth=2, label="mean of the last 100 episodes")
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    if evals and len(evals["step"]):
        by_step.plot(evals["step"], evals["mean_return"], "o-", markersize=4, label="greedy evaluation")
        by_time.plot(
            evals["wall_time"] / 60.0, evals["mean_return"], "o-", markersize=4, label="greedy evaluation"
        )
    by_step.set_ylabel("raw game return")
    by_step.legend(loc="best")
    figure.suptitle(title)
    figure.tight_layout()
    out = Path(out) if out is not None else layout.learning_curve
    try:
        image_format = out.suffix[1:].lower() or "png"
        write_atomically(out, lambda file: figure.savefig(file, format=image_format, dpi=110), "--out")
    finally:
        plt.close(figure)
    return out
