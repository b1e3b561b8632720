"""The live progress line: honest rates from the first line of a resumed run to the last line,
no NaN before the first episode, and the periodic evaluations shown."""

import io
import re

from pydqn.training.progress import Progress, plural


class Clock:
    """A stand-in for time.perf_counter that tests move by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def progress_with_clock(monkeypatch, **kwargs):
    clock = Clock()
    monkeypatch.setattr("pydqn.training.progress.time.perf_counter", clock)
    stream = io.StringIO()
    return Progress(stream=stream, interval=0.0, **kwargs), clock, stream


def rates(line: str) -> tuple[float, float]:
    found = re.search(r"\| ([\d,]+) frames/s \| ([\d,]+) updates/s", line)
    assert found is not None, line
    fps, updates = found.groups()
    return float(fps.replace(",", "")), float(updates.replace(",", ""))


def test_no_nan_before_the_first_episode(monkeypatch):
    progress, clock, stream = progress_with_clock(
        monkeypatch, total_steps=1_000, start_step=0, frames_per_step=4
    )
    clock.now += 1.0
    progress.update(8, 0, 1.0, force=True)
    assert "return(100) -" in stream.getvalue() and "nan" not in stream.getvalue()
    progress.episode(3.0)
    progress.episode(5.0)
    progress.update(16, 0, 1.0, force=True)
    assert "return(100) 4.0" in stream.getvalue().splitlines()[-1]


def test_a_resumed_runs_first_line_counts_from_where_it_resumed(monkeypatch):
    progress, clock, stream = progress_with_clock(
        monkeypatch, total_steps=2_000_000, start_step=1_000_000, frames_per_step=4, start_updates=250_000
    )
    clock.now += 2.0
    progress.update(1_000_800, 250_200, 0.01)  # 800 steps and 200 updates in 2 s
    assert rates(stream.getvalue()) == (800 * 4 / 2.0, 100.0)


def test_the_last_line_shows_the_whole_runs_rates_not_the_last_instant(monkeypatch):
    progress, clock, stream = progress_with_clock(
        monkeypatch, total_steps=1_000, start_step=0, frames_per_step=1
    )
    clock.now += 9.0
    progress.update(900, 200, 0.1)
    clock.now += 1.0
    progress.update(1_000, 250, 0.1, force=True)  # 1000 steps and 250 updates in 10 s, all told
    last = stream.getvalue().splitlines()[-1]
    assert rates(last) == (100.0, 25.0) and "0:00:10 elapsed" in last


def test_evaluations_are_shown_and_counts_are_spelled_right(monkeypatch):
    progress, _clock, stream = progress_with_clock(
        monkeypatch, total_steps=1_000, start_step=0, frames_per_step=1
    )
    progress.evaluation(500, 21.25, 1, best=True)
    progress.evaluation(1_000, 9.0, 10, best=False)
    first, second = stream.getvalue().splitlines()
    assert (
        first.strip()
        == "evaluation at step 500: mean return 21.2 over 1 episode; best so far, kept as best.pt"
    )
    assert second.strip() == "evaluation at step 1,000: mean return 9.0 over 10 episodes"
    assert (plural(1, "episode"), plural(0, "update"), plural(2_000, "step")) == (
        "1 episode",
        "0 updates",
        "2,000 steps",
    )
