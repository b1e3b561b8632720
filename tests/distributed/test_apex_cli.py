"""`pydqn train --actors N` as a user runs it: Ctrl-C stops the actors and the Ray cluster the run
started (no process of it is left) and writes the checkpoint."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("ray")


def processes_marked(mark: str) -> list[int]:
    """Processes whose environment holds ``mark`` (every process the run started inherits it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # ended meanwhile, or not ours to read
                pass
    return found


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.slow
def test_ctrl_c_stops_every_actor_and_the_cluster_with_a_checkpoint(tmp_path):
    mark = f"PYDQN_TEST_RUN={uuid.uuid4().hex}"
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "pydqn",
        "train",
        "--preset",
        "cartpole",
        "--actors",
        "2",
        "--envs-per-actor",
        "1",
        "--ray-num-cpus",
        "2",
        "--total-steps",
        "10000000",
        "--log-interval",
        "500",
        "--eval-interval",
        "0",
        "--no-tensorboard",
        "--run-dir",
        str(run_dir),
    ]
    name, value = mark.split("=")
    train = subprocess.Popen(
        command,
        cwd="/",
        env={**os.environ, name: value},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        metrics = run_dir / "metrics.csv"
        assert wait_for(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) > 2, 180)
        assert len(processes_marked(mark)) > 2  # the driver, Ray's own processes, the actors
        train.send_signal(signal.SIGINT)
        out, err = train.communicate(timeout=180)
    finally:
        if train.poll() is None:
            train.kill()
    assert train.returncode == 130, err
    assert "(interrupted; checkpoint written)" in out
    assert (run_dir / "checkpoint.pt").is_file()
    assert wait_for(lambda: not processes_marked(mark), 30), processes_marked(mark)
