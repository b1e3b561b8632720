"""A run's directory: its layout, its checkpoints (written atomically) and its growing logs.

Below the training loop, which writes them, and the reports (`pydqn.report`), which read them.
"""

from pydqn.runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pydqn.runs.claim import RunClaim, RunDirError, check_run_dir
from pydqn.runs.files import RunFileError
from pydqn.runs.layout import RunLayout, default_run_dir
from pydqn.runs.logs import RunLogs

__all__ = [
    "CheckpointError",
    "RunClaim",
    "RunDirError",
    "RunFileError",
    "RunLayout",
    "RunLogs",
    "check_run_dir",
    "default_run_dir",
    "load_checkpoint",
    "save_checkpoint",
]
