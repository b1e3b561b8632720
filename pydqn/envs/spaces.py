"""What pydqn needs of an env's spaces."""

from __future__ import annotations

from gymnasium.spaces import Discrete
from gymnasium.vector import VectorEnv


def num_actions(env: VectorEnv) -> int:
    """The number of actions of ``env``'s ``Discrete`` single action space (every env here has one)."""
    space = env.single_action_space
    if not isinstance(space, Discrete):
        raise ValueError(f"env: expected a Discrete action space, got {space}")
    return int(space.n)
