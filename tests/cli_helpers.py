"""Running the `pydqn` command as a user would, in a separate process."""

import subprocess
import sys


def run_pydqn(*argv: str) -> subprocess.CompletedProcess:
    """`python -m pydqn ARGV...` from a neutral directory, so the installed package is imported
    (from a checkout's root, `-m` would import the source tree, which has no compiled extension)."""
    return subprocess.run([sys.executable, "-m", "pydqn", *argv], capture_output=True, text=True, cwd="/")


def snapshot(folder) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> content): what a refused command must not change."""
    from pathlib import Path

    root = Path(folder)
    return {
        str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


def copy_run(run, destination):
    """A copy of run directory ``run`` at ``destination``."""
    import shutil

    shutil.copytree(run, destination)
    return destination
