"""The TD losses the fused op and its composite reference both implement."""

from typing import Literal, get_args

LossKind = Literal["huber", "mse"]
LOSS_KINDS: tuple[str, ...] = get_args(LossKind)
