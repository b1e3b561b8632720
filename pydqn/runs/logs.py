"""What a training run records as it goes: episode, metric and evaluation CSVs, and TensorBoard
scalars (when the tensorboard package is installed)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from pydqn.runs.files import open_log, write_failure
from pydqn.runs.layout import RunLayout

EPISODE_FIELDS = ("step", "return", "length", "wall_time")
EVAL_FIELDS = ("step", "mean_return", "std_return", "episodes", "best", "wall_time")
METRIC_FIELDS = ("step", "updates", "loss", "q_mean", "epsilon", "fps", "updates_per_s", "wall_time")


class CsvLog:
    """Appends rows to a CSV file (resumed runs keep adding to the same file)."""

    def __init__(self, path: Path, fields: tuple[str, ...]) -> None:
        self._path = path
        self._file = open_log(path, "log")
        new = self._file.tell() == 0
        self._writer = csv.DictWriter(self._file, fieldnames=fields)
        if new:
            self._writer.writeheader()

    def write(self, **row: float) -> None:
        try:
            self._writer.writerow(row)
            self._file.flush()
        except OSError as error:
            raise write_failure(error, "log", self._path) from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as error:
            raise write_failure(error, "log", self._path) from None


class RunLogs:
    """The files of a run directory that grow as it trains: ``episodes.csv``, ``metrics.csv``,
    ``evals.csv`` and, with ``tensorboard`` set and the package installed, the same scalars under
    ``tensorboard/`` (against env steps). ``metric_fields`` are metrics.csv's columns (a trainer
    may log more than `METRIC_FIELDS`)."""

    def __init__(
        self, run_dir: Path, tensorboard: bool, metric_fields: tuple[str, ...] = METRIC_FIELDS
    ) -> None:
        layout = RunLayout(run_dir)
        self._csv: dict[str, CsvLog] = {}
        self._board = None
        try:
            for kind, path, fields in (
                ("episode", layout.episodes, EPISODE_FIELDS),
                ("train", layout.metrics, metric_fields),
                ("eval", layout.evals, EVAL_FIELDS),
            ):
                self._csv[kind] = CsvLog(path, fields)
        except BaseException:
            self.close()
            raise
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
