"""Ape-X-style distributed training's parts: the experience chunks actors send the learner
(one frame per transition) and the rate limiter that holds the replay ratio.

A layer above `pydqn.training`, beside `pydqn.integrations`.
"""

from pydqn.distributed.chunks import ChunkReader, ChunkWriter, ExperienceChunk
from pydqn.distributed.rate_limiter import RateLimiter, RateLimiterClosed

__all__ = ["ChunkReader", "ChunkWriter", "ExperienceChunk", "RateLimiter", "RateLimiterClosed"]
