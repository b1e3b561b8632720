"""Ape-X-style distributed training on Ray (``pydqn train --actors N``): actor processes step the
envs and send experience in chunks (one frame per transition) to the learner, which owns the
replay buffer; a rate limiter holds the replay ratio.

A layer above `pydqn.training`, beside `pydqn.integrations`. Ray is an optional extra
(``pip install "pydqn[ray]"``), imported only when a run has actors.
"""

from pydqn.distributed.apex_trainer import ApexTrainer
from pydqn.distributed.chunks import ChunkReader, ChunkWriter, ExperienceChunk
from pydqn.distributed.rate_limiter import RateLimiter, RateLimiterClosed
from pydqn.distributed.run import make_trainer, train

__all__ = [
    "ApexTrainer",
    "ChunkReader",
    "ChunkWriter",
    "ExperienceChunk",
    "RateLimiter",
    "RateLimiterClosed",
    "make_trainer",
    "train",
]
