"""Replay buffers: the C++-backed `ReplayBuffer`, the plain `PyReplayBuffer` it is tested and
measured against, the `Batch` both return, and the `ReplayLike` interface both satisfy.

The lowest layer of pydqn besides the extension: it imports nothing of the layers above.
"""

from pydqn.replay.batch import Batch
from pydqn.replay.buffer import ReplayBuffer
from pydqn.replay.protocol import ReplayLike
from pydqn.replay.py_buffer import PyReplayBuffer

__all__ = ["Batch", "PyReplayBuffer", "ReplayBuffer", "ReplayLike"]
