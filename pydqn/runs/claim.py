"""Claiming a run directory: one process trains a run at a time, and a new run never mixes its files
with an old one's.

The rule: a new run needs a folder that holds no run files (`RunLayout.run_files`); with
``overwrite`` the old run's files are deleted first. Continuing a run is a resume. A claim locks
the folder (an advisory lock on the folder itself, which the OS drops when the process ends, even
killed),
so a second process training or resuming the same run is refused instead of writing beside it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydqn.runs.files import RunFileError, write_failure
from pydqn.runs.layout import TENSORBOARD, RunLayout

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the other rules still hold
    fcntl = None  # type: ignore[assignment]


class RunDirError(ValueError):
    """A run directory that cannot be used as asked: it holds another run, has no run to resume,
    or is being trained by another process."""


def check_run_dir(root: Path, *, resume: bool, overwrite: bool = False) -> None:
    """Raise `RunDirError` if ``root`` cannot take a new run (it holds one, and not ``overwrite``)
    or, for ``resume``, has no checkpoint; changes nothing. (`RunClaim` checks again under its lock.)"""
    layout = RunLayout(root)
    if resume and not layout.checkpoint.is_file():
        raise RunDirError(f"run_dir: {layout.root} holds no checkpoint to resume")
    found = layout.run_files()
    if not resume and found and not overwrite:
        raise RunDirError(
            f"run_dir: {layout.root} holds a run already ({', '.join(found)}); continue it "
            f"with --resume {layout.root}, start over with --overwrite (deletes those files), "
            "or choose another --run-dir"
        )


class RunClaim:
    """A run directory claimed by this process (see the module); `release` (or the process's end)
    gives it back."""

    def __init__(self, root: Path, *, resume: bool, overwrite: bool = False) -> None:
        self.layout = layout = RunLayout(root)
        self._created = [folder for folder in (layout.root, *layout.root.parents) if not folder.exists()]
        try:
            layout.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise write_failure(error, "run_dir", layout.root) from None
        self._lock: int | None = None
        try:
            self._lock = _lock(layout)
            check_run_dir(layout.root, resume=resume, overwrite=overwrite)
            if not resume and overwrite:
                _delete(layout, layout.run_files())
        except BaseException:
            self.abandon()
            raise

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor drops the lock
            self._lock = None

    def abandon(self) -> None:
        """`release` after a failed start: first remove the folders the claim created if they are
        still empty (while holding the lock, so no other process has started in them), so that a
        refused run leaves nothing behind."""
        if self._lock is not None and self._created and not any(self.layout.root.iterdir()):
            for folder in self._created:
                try:
                    folder.rmdir()
                except OSError:
                    break
        self.release()


def _lock(layout: RunLayout) -> int | None:
    """Lock the run folder itself (no lock file to leave behind or to race over)."""
    if fcntl is None:
        return None
    try:
        descriptor = os.open(layout.root, os.O_RDONLY)
    except OSError as error:
        raise write_failure(error, "run_dir", layout.root) from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise RunDirError(
            f"run_dir: {layout.root} is in use by another pydqn process; wait for it to end or "
            "choose another --run-dir"
        ) from None
    return descriptor


def _delete(layout: RunLayout, names: list[str]) -> None:
    for name in names:
        path = layout.root / name
        try:
            if name == TENSORBOARD and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as error:
            raise RunFileError(f"--overwrite: cannot delete {path}: {error.strerror}") from None
