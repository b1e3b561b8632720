"""The module paths of pydqn 0.1's flat layout, still importable: ``import pydqn.config`` gives
`pydqn.training.config` (the same module object) with a DeprecationWarning naming the new path."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED = {
    "pydqn.py_replay": "pydqn.replay.py_buffer",
    "pydqn.py_segment_tree": "pydqn.replay.py_segment_tree",
    "pydqn.batch": "pydqn.replay.batch",
    "pydqn.ops_reference": "pydqn.ops.reference",
    "pydqn.models": "pydqn.agent.models",
    "pydqn.policy": "pydqn.agent.policy",
    "pydqn.dqn": "pydqn.agent.learner",
    "pydqn.cuda_graph": "pydqn.agent.cuda_graph",
    "pydqn.config": "pydqn.training.config",
    "pydqn.components": "pydqn.training.components",
    "pydqn.train": "pydqn.training.run",
    "pydqn.async_train": "pydqn.training.async_trainer",
    "pydqn.evaluate": "pydqn.training.evaluate",
    "pydqn.phase_clock": "pydqn.training.phase_clock",
    "pydqn.checkpoint": "pydqn.runs.checkpoint",
    "pydqn.run_log": "pydqn.runs.logs",
    "pydqn.plot": "pydqn.report.plot",
    "pydqn.video": "pydqn.report.video",
    "pydqn.bench_replay": "pydqn.bench.replay",
    "pydqn.bench_prioritized": "pydqn.bench.prioritized",
    "pydqn.bench_device": "pydqn.bench.device",
    "pydqn.bench_train": "pydqn.bench.train",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: object, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {MOVED[spec.name]}; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        pass  # the new module ran when it was imported


def install() -> None:
    """Make the old paths importable (once)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())
