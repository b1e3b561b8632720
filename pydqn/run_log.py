"""What a training run records: episode, metric and evaluation CSVs, TensorBoard scalars (when the
tensorboard package is installed), and a live progress line."""

from __future__ import annotations

import csv
import importlib.util
import sys
import time
from collections import deque
from pathlib import Path
from typing import TextIO

EPISODE_FIELDS = ("step", "return", "length", "wall_time")
EVAL_FIELDS = ("step", "mean_return", "std_return", "episodes", "best", "wall_time")
METRIC_FIELDS = ("step", "updates", "loss", "q_mean", "epsilon", "fps", "updates_per_s", "wall_time")


class CsvLog:
    """Appends rows to a CSV file (resumed runs keep adding to the same file)."""

    def __init__(self, path: Path, fields: tuple[str, ...]) -> None:
        new = not path.exists() or path.stat().st_size == 0
        self._file = open(path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=fields)
        if new:
            self._writer.writeheader()

    def write(self, **row: float) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class RunLogs:
    """The files of a run directory that grow as it trains: ``episodes.csv``, ``metrics.csv``,
    ``evals.csv`` and, with ``tensorboard`` set and the package installed, the same scalars under
    ``tensorboard/`` (against env steps)."""

    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self._csv = {"episode": CsvLog(run_dir / "episodes.csv", EPISODE_FIELDS),
                     "train": CsvLog(run_dir / "metrics.csv", METRIC_FIELDS),
                     "eval": CsvLog(run_dir / "evals.csv", EVAL_FIELDS)}
        self._board = None
        if tensorboard and importlib.util.find_spec("tensorboard") is not None:  # optional extra
            from torch.utils.tensorboard import SummaryWriter

            self._board = SummaryWriter(str(run_dir / "tensorboard"))

    def episode(self, **row: float) -> None:
        self._write("episode", row)

    def metrics(self, **row: float) -> None:
        self._write("train", row)

    def evaluation(self, **row: float) -> None:
        self._write("eval", row)

    def _write(self, kind: str, row: dict[str, float]) -> None:
        self._csv[kind].write(**row)
        if self._board is not None:
            for name, value in row.items():
                if name not in ("step", "wall_time"):
                    self._board.add_scalar(f"{kind}/{name}", value, row["step"])

    def close(self) -> None:
        for log in self._csv.values():
            log.close()
        if self._board is not None:
            self._board.close()


class Progress:
    """One status line: steps, frames/s, updates/s, mean return of the last 100 episodes, epsilon,
    ETA. Redrawn in place on a terminal, printed at most every ``interval`` seconds otherwise."""

    def __init__(self, total_steps: int, start_step: int, frames_per_step: int,
                 stream: TextIO = sys.stderr, interval: float = 0.5) -> None:
        self.total_steps, self.frames_per_step = total_steps, frames_per_step
        self.stream, self.interval = stream, interval if stream.isatty() else 30.0
        self.returns: deque[float] = deque(maxlen=100)
        self._start = time.perf_counter()
        self._start_step = start_step
        self._last_draw = 0.0
        self._last = (self._start, start_step, 0)
        self.fps = self.updates_per_s = 0.0

    def episode(self, raw_return: float) -> None:
        self.returns.append(raw_return)

    def mean_return(self) -> float:
        return sum(self.returns) / len(self.returns) if self.returns else float("nan")

    def update(self, step: int, updates: int, epsilon: float, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_draw < self.interval:
            return
        last_time, last_step, last_updates = self._last
        elapsed = max(now - last_time, 1e-9)
        self.fps = (step - last_step) * self.frames_per_step / elapsed
        self.updates_per_s = (updates - last_updates) / elapsed
        self._last, self._last_draw = (now, step, updates), now
        rate = (step - self._start_step) / max(now - self._start, 1e-9)
        eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
        line = (f"step {step:,}/{self.total_steps:,} | {self.fps:,.0f} frames/s | "
                f"{self.updates_per_s:,.0f} updates/s | return(100) {self.mean_return():.1f} | "
                f"eps {epsilon:.3f} | ETA {_duration(eta)}")
        end = "\r" if self.stream.isatty() and not force else "\n"
        print(line.ljust(100), end=end, file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
