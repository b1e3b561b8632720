"""A run's files: written atomically into fresh, exclusively created temporary files, never through a
symbolic link, and a run folder claimed by one process at a time."""

import os
import tempfile

import pytest

from pydqn.runs import RunClaim, RunDirError, RunFileError, RunLogs, load_checkpoint, save_checkpoint
from pydqn.runs.files import write_atomically


@pytest.fixture
def victim(tmp_path):
    """A file outside the run folder that a planted link points at: it must never change."""
    path = tmp_path / "victim.txt"
    path.write_text("precious")
    return path


def test_a_link_planted_at_the_old_temporary_name_redirects_nothing(tmp_path, victim):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt.tmp").symlink_to(victim)  # the fixed name pydqn 0.1 wrote through
    save_checkpoint(run / "checkpoint.pt", {"step": 3})
    assert victim.read_text() == "precious" and load_checkpoint(run / "checkpoint.pt")["step"] == 3


def test_the_temporary_file_is_created_exclusively(tmp_path, victim, monkeypatch):
    """Even a link planted at the very name the temporary file would get is skipped, not followed."""
    run = tmp_path / "run"
    run.mkdir()
    names = iter(["planted", "fresh"])
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)
    (run / ".checkpoint.pt.planted.tmp.pt").symlink_to(victim)
    save_checkpoint(run / "checkpoint.pt", {"step": 4})
    assert victim.read_text() == "precious" and load_checkpoint(run / "checkpoint.pt")["step"] == 4
    assert sorted(p.name for p in run.iterdir()) == [".checkpoint.pt.planted.tmp.pt", "checkpoint.pt"]


def test_a_checkpoint_is_never_written_through_a_link(tmp_path, victim):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").symlink_to(victim)
    with pytest.raises(
        RunFileError, match=r"checkpoint: .*checkpoint\.pt is a symbolic link; pydqn does not"
    ):
        save_checkpoint(run / "checkpoint.pt", {"step": 5})
    assert victim.read_text() == "precious" and (run / "checkpoint.pt").is_symlink()
    assert [p.name for p in run.iterdir()] == ["checkpoint.pt"]  # no temporary file left


def test_a_log_is_never_appended_through_a_link(tmp_path, victim):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").symlink_to(victim)
    with pytest.raises(RunFileError, match=r"log: cannot write .*metrics\.csv: it is a symbolic link"):
        RunLogs(run, tensorboard=False)
    assert victim.read_text() == "precious"


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("old")

    def fail(file):
        file.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, fail, "config")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_a_claim_locks_the_folder_until_released(tmp_path):
    first = RunClaim(tmp_path / "run", resume=False)
    with pytest.raises(RunDirError, match="is in use by another pydqn process"):
        RunClaim(tmp_path / "run", resume=False)
    first.release()
    RunClaim(tmp_path / "run", resume=False).release()


def test_a_refused_claim_of_a_new_folder_leaves_no_folder(tmp_path):
    with pytest.raises(RunDirError, match="holds no checkpoint to resume"):
        RunClaim(tmp_path / "a" / "b" / "run", resume=True)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_deletes_only_the_run_files(tmp_path):
    run = tmp_path / "run"
    (run / "tensorboard").mkdir(parents=True)
    for name in ("config.toml", "checkpoint.pt", "episodes.csv", "learning_curve.png", "notes.txt"):
        (run / name).write_text("x")
    with pytest.raises(RunDirError, match=r"holds a run already \(config.toml, checkpoint.pt, episodes.csv"):
        RunClaim(run, resume=False)
    RunClaim(run, resume=False, overwrite=True).release()
    assert sorted(os.listdir(run)) == ["notes.txt"]
