"""`pydqn bench --actors`, its second half: the env frames/s that 1, 2, ... Ape-X actors deliver
to one learner, measured through `ApexTrainer` itself (Ray actors, chunks, ingest), with no
learning in the way: ``learning_starts`` lies beyond the run, so the rate limiter never lets the
learner sample and the actors step as fast as they can.
"""

from __future__ import annotations

import csv
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydqn.bench.actors import actors_fed
from pydqn.distributed.run import make_trainer
from pydqn.envs import frames_per_step
from pydqn.training.config import build_config
from pydqn.training.run import run_to_end


@dataclass(frozen=True)
class FleetFigures:
    actors: int
    envs_per_actor: int
    frames_per_s: float  # all actors together: the median over metrics.csv's windows
    frames_per_s_per_actor: float  # the median actor's, over the same windows
    transitions_per_s_per_actor: float
    bytes_per_transition: float  # on the wire, the median window's


def run_fleet_bench(
    env_id: str, actor_counts: list[int], steps_per_actor: int, envs_per_actor: int, ray_num_cpus: int = 0
) -> list[FleetFigures]:
    """Run ``steps_per_actor`` env steps with each count of actors (no learning) and read the
    rates back from the run's metrics.csv; the first window (the actors' start-up) is left out."""
    figures = []
    for actors in actor_counts:
        total = steps_per_actor * actors
        config = build_config(
            overrides={
                "env_id": env_id,
                "actors": actors,
                "envs_per_actor": envs_per_actor,
                "total_steps": total,
                "learning_starts": total + 1,  # no update: the actors' rate alone
                "buffer_size": min(total + 1, 1_000_000),
                "log_interval": max(1, total // 6),
                "checkpoint_interval": 10 * total,
                "eval_interval": 0,
                "tensorboard": False,
                "device": "cpu",
                "ray_num_cpus": ray_num_cpus,
            }
        )
        with tempfile.TemporaryDirectory(prefix="pydqn-bench-fleet-") as folder:
            run_to_end(make_trainer(config, Path(folder) / "run"))
            with open(Path(folder) / "run" / "metrics.csv", newline="") as file:
                rows = list(csv.DictReader(file))
        rows = rows[1:] if len(rows) > 1 else rows
        per_actor = [float(row[f"fps_actor{i}"]) for row in rows for i in range(actors)]
        fps = statistics.median(per_actor)
        figures.append(
            FleetFigures(
                actors=actors,
                envs_per_actor=envs_per_actor,
                frames_per_s=statistics.median(float(row["fps"]) for row in rows),
                frames_per_s_per_actor=fps,
                transitions_per_s_per_actor=fps / frames_per_step(env_id),
                bytes_per_transition=statistics.median(float(row["bytes_per_transition"]) for row in rows),
            )
        )
    return figures


def format_fleet_table(env_id: str, figures: list[FleetFigures], ingest_ceiling: float) -> str:
    """The measured rates, and how many actors of the measured per-actor rate one learner's
    ``ingest_ceiling`` (transitions/s) could feed."""
    lines = [
        f"Ape-X actors on {env_id} (no learning; medians over metrics.csv's windows)",
        f"{'actors':>6} {'envs each':>9} {'frames/s':>10} {'per actor':>10} {'B/transition':>13} "
        f"{'actors one learner feeds':>25}",
    ]
    for f in figures:
        fed = actors_fed(ingest_ceiling, f.transitions_per_s_per_actor)
        lines.append(
            f"{f.actors:>6} {f.envs_per_actor:>9} {f.frames_per_s:>10,.0f} "
            f"{f.frames_per_s_per_actor:>10,.0f} {f.bytes_per_transition:>13,.0f} {fed:>25,.0f}"
        )
    return "\n".join(lines)
