"""pydqn: fast, memory-frugal Deep Q-Networks on Atari with PyTorch and a C++ replay core."""

import torch  # noqa: F401  (the extension links against torch's libraries: load them first)

from pydqn.batch import Batch
from pydqn.py_replay import PyReplayBuffer
from pydqn.replay import ReplayBuffer  # checks the torch version, then loads pydqn._C

__all__ = ["Batch", "PyReplayBuffer", "ReplayBuffer"]
__version__ = "0.1.0"
