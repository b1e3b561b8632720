"""pydqn's replay buffer as a drop-in for Stable-Baselines3's, for SB3 and CleanRL users.

One line changes a DQN's replay to pydqn's frame-deduplicating buffer::

    from pydqn.integrations.sb3 import ReplayBuffer
    model = DQN("CnnPolicy", env, replay_buffer_class=ReplayBuffer)

`ReplayBuffer` takes SB3's constructor and ``add``/``sample`` calls (and CleanRL's, with a
gymnasium vector env's ``infos``), stores each Atari transition in about one frame instead of two
stacks, keeps truncated episodes' real next observations, and adds n-step returns; with
`PrioritizedReplayBuffer` and this package's `DQN`, SB3's DQN trains with prioritized replay.
"""

try:
    import stable_baselines3  # noqa: F401
except ImportError as error:
    raise ImportError(
        'pydqn.integrations.sb3 needs Stable-Baselines3, an optional extra of pydqn: pip install "pydqn[sb3]"'
    ) from error

from pydqn.integrations.sb3.buffer import ReplayBuffer
from pydqn.integrations.sb3.dqn import DQN
from pydqn.integrations.sb3.prioritized import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples

__all__ = ["DQN", "PrioritizedReplayBuffer", "PrioritizedReplayBufferSamples", "ReplayBuffer"]
