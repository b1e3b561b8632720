"""Writing episodes as video files through imageio's ffmpeg plugin (the optional ``video`` extra)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pydqn.runs.files import publish, temporary_beside


class VideoWriter:
    """Appends RGB frames ``(H, W, 3) uint8`` to a video file (mp4, mkv, ... by its suffix)."""

    def __init__(self, path: Path, fps: float) -> None:
        try:
            import imageio.v2 as imageio
            import imageio_ffmpeg  # noqa: F401 (imageio finds ffmpeg through it)
        except ImportError:
            raise ImportError(
                "video: writing videos needs imageio and imageio-ffmpeg; "
                "install them with pip install 'pydqn[video]'"
            ) from None
        # The video appears whole at ``path`` when closed, or not at all.
        self._path = Path(path)
        descriptor, self._temporary = temporary_beside(self._path, "video")
        os.close(descriptor)
        # macro_block_size=1: Atari's 210 x 160 screens are encoded as they are, not rescaled.
        self._writer = imageio.get_writer(self._temporary, fps=fps, macro_block_size=1)
        self.frames = 0

    def add(self, frame: np.ndarray) -> None:
        self._writer.append_data(np.asarray(frame, dtype=np.uint8))
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file and put it at its path (``keep=False``: discard it)."""
        try:
            self._writer.close()
        except BaseException:
            self._temporary.unlink(missing_ok=True)
            raise
        if keep:
            publish(self._temporary, self._path, "video")
        else:
            self._temporary.unlink(missing_ok=True)
