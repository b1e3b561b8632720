"""Checkpoints: written atomically, protected by a checksum of their content, read back with clear
errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from pydqn.runs.files import write_atomically

FORMAT = "pydqn-checkpoint"
VERSION = 2  # 2: with a SHA-256 of the content; 1 (pydqn 0.1): without
READABLE_VERSIONS = (1, 2)
_HEADER = ("format", "version", "sha256")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, damaged, or not a pydqn checkpoint."""


def save_checkpoint(path: Path, state: dict[str, Any], what: str = "checkpoint") -> None:
    """Write ``state`` (tensors, numbers, strings and containers of them) to ``path`` so that
    ``path`` always holds a complete checkpoint; raises `pydqn.runs.RunFileError` naming the file
    when it cannot be written (the previous checkpoint is then intact)."""
    record = {"format": FORMAT, "version": VERSION, "sha256": content_digest(state), **state}
    write_atomically(Path(path), lambda file: torch.save(record, file), what)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state `save_checkpoint` wrote to ``path``; raises `CheckpointError` naming the file if
    it is missing, not a pydqn checkpoint, of an unknown version, or changed since it was written."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint: {path} does not exist")
    try:
        # weights_only: a checkpoint holds data, never code to run.
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged files
        raise CheckpointError(
            f"checkpoint: {path} is truncated or not a pydqn checkpoint ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {path} is not a pydqn checkpoint")
    if record.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"checkpoint: {path} has format version {record.get('version')!r}, this pydqn reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    state = {key: value for key, value in record.items() if key not in _HEADER}
    if record["version"] >= 2 or "sha256" in record:  # a checksum relabelled version 1 counts too
        try:
            intact = record.get("sha256") == content_digest(state)
        except (TypeError, RuntimeError) as error:  # RuntimeError: tensors without plain storage
            raise CheckpointError(f"checkpoint: {path} holds data of an unknown kind ({error})") from None
        if not intact:
            raise CheckpointError(
                f"checkpoint: {path} is damaged: its content does not match the checksum written "
                "with it (a changed byte, or a file edited since)"
            )
    return state


def file_stamp(path: Path) -> tuple[int, int, int]:
    """What changes when a checkpoint file is replaced (its inode, size and modification time)."""
    status = os.stat(path)
    return status.st_ino, status.st_size, status.st_mtime_ns


def content_digest(value: Any) -> str:
    """A SHA-256 of a state's content (keys, types, shapes, dtypes and bytes), independent of how
    torch lays the file out."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data if tensor.numel() else b"")
    elif isinstance(value, dict):
        digest.update(f"d{len(value)}".encode())
        for key in sorted(value, key=lambda key: (type(key).__name__, key)):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__[0]}{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or isinstance(value, (bool, int, str, bytes)):
        digest.update(f"{type(value).__name__}:{value!r}".encode())
    elif isinstance(value, float):
        digest.update(f"float:{value.hex()}".encode())
    else:
        raise TypeError(f"cannot checksum a {type(value).__name__}")
