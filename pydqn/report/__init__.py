"""What a person looks at after a run: its learning curve as a PNG (`plot_run`, needs matplotlib)
and episodes recorded as video (`VideoWriter`, needs the ``video`` extra). Both import their
optional packages only when called."""

from pydqn.report.plot import plot_run, running_mean
from pydqn.report.video import VideoWriter

__all__ = ["VideoWriter", "plot_run", "running_mean"]
