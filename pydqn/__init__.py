"""pydqn: fast, memory-frugal Deep Q-Networks on Atari with PyTorch and a C++ replay core.

The package is layered; each layer imports only those below it (tests/test_layering.py checks):

    pydqn.cli, pydqn.bench      the command line and the benchmark workloads
    pydqn.integrations          drop-in replay for other libraries (sb3: Stable-Baselines3, CleanRL)
    pydqn.distributed           Ape-X-style training's parts: experience chunks, the rate limiter
    pydqn.training              configuration, the trainers, evaluation
    pydqn.report                learning curves and videos
    pydqn.agent, pydqn.runs     models, acting, the learner; a run directory's files
    pydqn.replay, pydqn.ops,    replay buffers; fused tensor ops; Atari and classic envs
    pydqn.envs
    pydqn.device, pydqn._C      device resolution; the C++ extension
"""

import torch as _torch  # noqa: F401  (the extension links against torch's libraries: load them first)

from pydqn import _moved
from pydqn.replay import Batch, PyReplayBuffer, ReplayBuffer, ReplayLike

_moved.install()  # pydqn 0.1's module paths (pydqn.config, ...) still import, with a warning

__all__ = ["Batch", "PyReplayBuffer", "ReplayBuffer", "ReplayLike"]
__version__ = "0.1.0"
