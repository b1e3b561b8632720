"""Writing a run's files safely: whole files appear atomically, logs are appended, no write follows a
symbolic link, and a failed write (a full disk, a read-only folder) says which file and why."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TextIO


class RunFileError(OSError):
    """A run's file that cannot be written (or is a symbolic link, which pydqn never writes
    through); the message names the file and the reason."""


def write_atomically(path: Path, write: Callable[[BinaryIO], object], what: str) -> None:
    """Write ``path`` so that it always holds either its previous content or all of the new one:
    ``write(file)`` fills a fresh temporary file beside it (`temporary_beside`), which `publish`
    then syncs and renames over ``path``. Raises `RunFileError` naming ``what`` and ``path``;
    ``path`` is then unchanged."""
    path = Path(path)
    descriptor, temporary = temporary_beside(path, what)
    file = _RecordingWriter(os.fdopen(descriptor, "wb"))
    try:
        with file:
            write(file)  # type: ignore[arg-type]  # a binary file in all that writers use
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        # Writers such as torch.save turn the OSError of a full disk into their own exception.
        cause = error if isinstance(error, OSError) else file.error
        if cause is not None:
            raise write_failure(cause, what, path, _kept(path)) from None
        raise
    publish(temporary, path, what)


class _RecordingWriter:
    """A binary file that remembers the first OSError its writes raised."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._file.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self._file, name)

    def __enter__(self) -> _RecordingWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._file.close()
        except OSError as error:
            self.error = self.error or error
            raise


def temporary_beside(path: Path, what: str) -> tuple[int, Path]:
    """A new temporary file in ``path``'s folder (its descriptor and path), created exclusively under
    a fresh name, so that nothing planted there can redirect the write; refuses a ``path`` that
    is a symbolic link."""
    path = Path(path)
    refuse_link(path, what)
    try:
        descriptor, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
    except OSError as error:
        raise write_failure(error, what, path) from None
    # mkstemp's files are private (0600); a run's files get the permissions of any new file.
    os.fchmod(descriptor, 0o666 & ~_umask())
    return descriptor, Path(name)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def publish(temporary: Path, path: Path, what: str) -> None:
    """Sync ``temporary`` and rename it over ``path`` (removing it if that fails)."""
    try:
        refuse_link(path, what)
    except RunFileError:
        temporary.unlink(missing_ok=True)
        raise
    try:
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise write_failure(error, what, path, _kept(path)) from None
    _sync_folder(path.parent)


def _kept(path: Path) -> str:
    return "; the previous version is intact" if path.exists() else ""


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (it lives in the folder's entry, not the file)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def open_log(path: Path, what: str) -> TextIO:
    """``path`` opened for appending text, created if missing, never through a symbolic link."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.fdopen(os.open(path, flags, 0o644), "a", newline="")
    except OSError as error:
        raise write_failure(error, what, path) from None


def refuse_link(path: Path, what: str) -> None:
    """Raise `RunFileError` if ``path`` is a symbolic link."""
    if path.is_symlink():
        raise RunFileError(f"{what}: {path} is a symbolic link; pydqn does not write through links")


def write_failure(error: OSError, what: str, path: Path, note: str = "") -> RunFileError:
    """A `RunFileError` for a write of ``path`` (the run's ``what``) that failed with ``error``."""
    return RunFileError(f"{what}: cannot write {path}: {_reason(error)}{note}")


def _reason(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "it is a symbolic link; pydqn does not write through links"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{error.strerror} (the disk or quota is full)"
    if error.errno == errno.EFBIG:
        return f"{error.strerror} (over the size limit for a file)"
    return error.strerror or str(error)
