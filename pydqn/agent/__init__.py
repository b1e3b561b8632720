"""The agent: Q-networks, epsilon-greedy acting, and the DQN learner that updates from batches.

Above the replay buffers and ops (it takes `Batch` tuples and computes with `pydqn.ops`), below the
training loop (it knows nothing of envs' stepping, runs or files).
"""

from pydqn.agent.learner import DQNLearner, LearnerConfig
from pydqn.agent.models import MLP, NatureCNN, make_q_network
from pydqn.agent.policy import LinearEpsilon, epsilon_greedy

__all__ = [
    "MLP",
    "DQNLearner",
    "LearnerConfig",
    "LinearEpsilon",
    "NatureCNN",
    "epsilon_greedy",
    "make_q_network",
]
