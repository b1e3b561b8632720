"""What a training run records as it goes: episode, metric and evaluation CSVs, and TensorBoard
scalars (when the tensorboard package is installed)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from pydqn.runs.layout import RunLayout

EPISODE_FIELDS = ("step", "return", "length", "wall_time")
EVAL_FIELDS = ("step", "mean_return", "std_return", "episodes", "best", "wall_time")
METRIC_FIELDS = ("step", "updates", "loss", "q_mean", "epsilon", "fps", "updates_per_s", "wall_time")


class CsvLog:
    """Appends rows to a CSV file (resumed runs keep adding to the same file)."""

    def __init__(self, path: Path, fields: tuple[str, ...]) -> None:
        new = not path.exists() or path.stat().st_size == 0
        self._file = open(path, "a", newline="")  # noqa: SIM115  (open for the run; see close)
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
        layout = RunLayout(run_dir)
        self._csv = {
            "episode": CsvLog(layout.episodes, EPISODE_FIELDS),
            "train": CsvLog(layout.metrics, METRIC_FIELDS),
            "eval": CsvLog(layout.evals, EVAL_FIELDS),
        }
        self._board = None
        if tensorboard and importlib.util.find_spec("tensorboard") is not None:  # optional extra
            from torch.utils.tensorboard import SummaryWriter

            self._board = SummaryWriter(str(layout.tensorboard))

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
