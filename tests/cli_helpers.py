"""Running the `pydqn` command as a user would, in a separate process."""

import subprocess
import sys


def run_pydqn(*argv: str) -> subprocess.CompletedProcess:
    """`python -m pydqn ARGV...` from a neutral directory, so the installed package is imported
    (from a checkout's root, `-m` would import the source tree, which has no compiled extension)."""
    return subprocess.run([sys.executable, "-m", "pydqn", *argv], capture_output=True, text=True, cwd="/")
