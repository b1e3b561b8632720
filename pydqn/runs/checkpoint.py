"""Checkpoints: written atomically (temp file, fsync, rename), read back with clear errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FORMAT = "pydqn-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, or not a pydqn checkpoint."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` so that ``path`` always holds a complete checkpoint."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        torch.save({"format": FORMAT, "version": VERSION, **state}, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged files
        raise CheckpointError(
            f"checkpoint: {path} is truncated or not a pydqn checkpoint ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {path} is not a pydqn checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint: {path} has format version {state.get('version')}, "
            f"this pydqn reads version {VERSION}"
        )
    return state
