"""pydqn's tensor operators, registered with PyTorch as ``torch.ops.pydqn.*`` for CPU and CUDA.

The training loop computes its target and loss only through `td_target` and `q_td_loss`. Each op
has a fake implementation that checks its arguments as the kernel does (`pydqn.ops.fakes`), so
``torch.compile`` and CUDA graph capture accept it, and `q_td_loss` has an autograd formula whose
backward is an op too (`pydqn.ops.autograd`). `pydqn.ops.reference` holds the same formulas as
composite PyTorch code, which the tests and benchmarks compare against.
"""

from pydqn.ops import autograd, fakes  # noqa: F401  (registrations)
from pydqn.ops.fused import q_td_loss, stack_gather, td_target
from pydqn.ops.loss_kind import LOSS_KINDS, LossKind

__all__ = ["LOSS_KINDS", "LossKind", "q_td_loss", "stack_gather", "td_target"]
