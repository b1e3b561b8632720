"""The CleanRL-style example runs, on pydqn's buffer and, with only its import line changed, on
SB3's: the one-line change the README promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")
pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "cleanrl_dqn_atari.py"
PYDQN_IMPORT = "from pydqn.integrations.sb3 import ReplayBuffer"
SB3_IMPORT = "from stable_baselines3.common.buffers import ReplayBuffer"
# 300 steps of 2 envs, 100 of them learning; episodes of 200 frames (50 steps) end by truncation.
SMOKE = ["--env-id", "ALE/Pong-v5", "--total-timesteps", "300", "--learning-starts", "200",
         "--buffer-size", "1000", "--num-envs", "2", "--max-episode-frames", "200",
         "--log-every", "300", "--cuda", "false"]  # fmt: skip


def run(script: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(script), *SMOKE], capture_output=True, text=True, cwd="/", timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("buffer", ["pydqn", "sb3"])
def test_the_example_runs_with_either_buffer(buffer: str, tmp_path: Path) -> None:
    source = EXAMPLE.read_text()
    assert source.count(PYDQN_IMPORT) == 1
    script = tmp_path / EXAMPLE.name
    script.write_text(source if buffer == "pydqn" else source.replace(PYDQN_IMPORT, SB3_IMPORT))
    out = run(script)
    assert "step 300: episodes " in out and "episodes 0," not in out
