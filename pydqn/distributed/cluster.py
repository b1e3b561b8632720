"""Ray, an optional extra: imported with an error that names the extra, and the cluster a run's
actors live on, joined or started here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from pydqn.settings import SettingError
from pydqn.training.config import TrainConfig


def import_ray() -> ModuleType:
    """The ``ray`` module; ImportError naming the extra when it is not installed."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            'actors: distributed training runs on Ray, an optional extra: pip install "pydqn[ray]"'
        ) from None
    return ray


PACKAGE = Path(__file__).resolve().parents[1]  # the pydqn this process imported


@contextmanager
def workers_import_this_pydqn() -> Iterator[None]:
    """Around ``ray.init``: Ray puts the driver's working directory first on its workers'
    ``sys.path`` (and starts them there), so from a pydqn checkout's root they would import its
    source tree (which has no compiled extension) instead of the installed package. There, Ray is
    started from the folder this pydqn was imported from; elsewhere the working directory stays
    (a user's env module may live there)."""
    shadow = Path.cwd() / "pydqn"
    if not shadow.is_dir() or shadow.resolve() == PACKAGE:
        yield
        return
    previous = os.getcwd()
    os.chdir(PACKAGE.parent)
    try:
        yield
    finally:
        os.chdir(previous)


class RayCluster:
    """Connects this process to Ray for ``config``'s actors: a cluster already connected (by the
    caller) is used as it is; else ``ray_address`` (``auto`` or ``HOST:PORT``) is joined, or a
    local cluster of ``ray_num_cpus`` CPUs (0: the machine's) is started, without a dashboard.
    Refuses, before any actor starts, a cluster with fewer CPUs than actors (each takes one)."""

    def __init__(self, config: TrainConfig) -> None:
        self.ray = ray = import_ray()
        self.started_here = not ray.is_initialized()
        if self.started_here:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
            options = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
            try:
                with workers_import_this_pydqn():
                    if config.ray_address:
                        ray.init(address=config.ray_address, **options)
                    else:
                        ray.init(num_cpus=config.ray_num_cpus or None, **options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                where = (
                    f"join the Ray cluster at {config.ray_address!r}" if config.ray_address else "start Ray"
                )
                raise ConnectionError(f"ray_address: cannot {where}: {error}") from None
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < config.actors:
            self.close()
            raise SettingError(
                f"actors: {config.actors} actors need a CPU each, and the Ray cluster has {cpus}; "
                "use fewer actors, or declare more CPUs (--ray-num-cpus N) to share cores"
            )

    def close(self) -> None:
        """Shut Ray down if this process started it (its worker processes end with it)."""
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()
