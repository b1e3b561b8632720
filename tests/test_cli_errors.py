"""Every bad command line, setting, file or run folder is one clear message and a non-zero exit,
and changes nothing: no traceback, no run folder created, no file of an existing run touched."""

import os
import re
import subprocess
import sys

import pytest
import torch
from cli_helpers import copy_run, run_pydqn, snapshot

from pydqn import __version__
from pydqn.cli import main

# (argv, exit status, what the one message says). Run from an empty folder: nothing may appear in it.
BAD_COMMAND_LINES = [
    (["train", "--gama", "0.5"], 2, "unrecognized arguments: --gama 0.5; did you mean --gamma?"),
    (["train", "--env-id", "CartPole-v1"], 2, "unrecognized arguments: --env-id"),
    (["train", "--asynchronous"], 2, "unrecognized arguments: --asynchronous"),
    (["train", "--total-steps", "96.7"], 2, "argument --total-steps: expected an integer, got '96.7'"),
    (["train", "--total-steps", "1,0,0"], 2, "argument --total-steps: expected an integer, got '1,0,0'"),
    (["train", "--hidden-sizes", "64,64"], 2, "argument --hidden-sizes: expected an integer, got '64,64'"),
    (["train", "--batch-size", "-1"], 2, "batch_size: expected a value in [1, 65,536], got -1"),
    (["train", "--batch-size", "0"], 2, "batch_size: expected a value in [1, 65,536], got 0"),
    (["train", "--loss", "l1"], 2, "argument --loss: invalid choice: 'l1'"),
    (["train", "--preset", "cartpole", "--epsilon-end", "2"], 2, "epsilon_end: expected a value in [0, 1]"),
    (["train", "--gamma", "nan"], 2, "learner.gamma: expected a value in [0, 1], got nan"),
    (["train", "--learning-rate", "0"], 2, "learner.learning_rate: expected a value in (0, 1], got 0.0"),
    (["train", "--max-grad-norm", "nan"], 2, "learner.max_grad_norm: expected a value in (0, 1,000,000]"),
    (["train", "--tau", "-1"], 2, "learner.tau: expected a value in (0, 1], got -1.0"),
    (["train", "--rmsprop-alpha", "inf"], 2, "learner.rmsprop_alpha: expected a value in [0, 1), got inf"),
    (["train", "--target-update-interval", "0"], 2, "learner.target_update_interval: expected a value"),
    (["train", "--priority-epsilon=-1e-6"], 2, "priority_epsilon: expected a value in (0, 1]"),
    (["train", "--hidden-sizes", "64", "0"], 2, "hidden_sizes: expected items in [1, 65,536], got [64, 0]"),
    (["train", "--n-step", "1000"], 2, "n_step: expected a value in [1, 64], got 1000"),
    (["train", "--seed", "-3"], 2, "seed: expected a value in [0, 1,073,741,824], got -3"),
    (["train", "--torch-threads", "100000"], 2, "torch_threads: expected a value in [0, 1024]"),
    (["train", "--num-envs", "0"], 2, "num_envs: expected a value in [1, 1024], got 0"),
    (["train", "--device", "gpu"], 2, "device: expected 'cpu' or a torch.device such as 'cuda:0', got 'gpu'"),
    (["train", "--env", "ALE/Pongo-v5"], 2, "env_id: expected an ALE id of the form 'ALE/<Game>-v5'"),
    (["train", "--env", "Nothing-v0"], 2, "env_id: expected a registered gymnasium id"),
    (["train", "--config", "missing.toml"], 2, "config: missing.toml does not exist"),
    (["train", "--resume", "nowhere"], 2, "checkpoint: nowhere/checkpoint.pt does not exist"),
    (["train", "--resume", "nowhere", "--preset", "cartpole"], 2, "--preset: a resumed run keeps its folder"),
    (["evaluate", "nowhere", "--epsilon", "2"], 2, "epsilon: expected a value in [0, 1], got 2.0"),
    (["evaluate", "nowhere", "--epsilon", "nan"], 2, "epsilon: expected a value in [0, 1], got nan"),
    (["evaluate", "nowhere", "--episodes", "0"], 2, "argument --episodes: expected a positive integer"),
    (["evaluate", "nowhere", "--seed", "-1"], 2, "seed: expected a value in [0, 1,073,741,824], got -1"),
    (["evaluate", "nowhere"], 2, "checkpoint: nowhere does not exist"),
    (["plot", "nowhere"], 2, "run_dir: nowhere does not exist or is not a folder"),
]
if not torch.cuda.is_available():
    BAD_COMMAND_LINES += [
        (["train", "--device", "cuda"], 2, "device: 'cuda' was asked for, but torch sees no CUDA device"),
        (["train", "--cuda-graph"], 2, "cuda_graph: capturing the update needs a CUDA device"),
        (["evaluate", "nowhere", "--device", "cuda:1"], 2, "device: 'cuda:1' was asked for"),
    ]


@pytest.mark.parametrize("argv,status,message", BAD_COMMAND_LINES)
def test_a_bad_command_line_is_one_message_and_changes_nothing(
    tmp_path, monkeypatch, capsys, argv, status, message
):
    monkeypatch.chdir(tmp_path)
    try:
        code: object = main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    out, err = capsys.readouterr()
    assert code == status
    assert message in err
    lines = err.splitlines()
    assert len(lines) <= 2 and lines[0].startswith(f"pydqn {argv[0]}: error: ")
    assert out == "" and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no run folder, no file


def test_in_a_separate_process_too_and_debug_shows_the_traceback(tmp_path):
    result = run_pydqn("train", "--gamma", "nan")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "pydqn train: error: learner.gamma: expected a value in [0, 1], got nan"
    debug = run_pydqn("train", "--gamma", "nan", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "SettingError" in debug.stderr


def test_integer_flags_take_digits_grouped_as_people_write_them():
    from pydqn.cli import build_parser, setting_overrides

    args = build_parser().parse_args(["train", "--total-steps", "10,000,000", "--buffer-size", "100_000"])
    assert setting_overrides(args) == {"total_steps": 10_000_000, "buffer_size": 100_000}


def test_version():
    import importlib.metadata

    assert __version__ == importlib.metadata.version("pydqn")  # the package and its metadata agree
    result = run_pydqn("--version")
    assert result.returncode == 0
    assert re.fullmatch(
        rf"pydqn {re.escape(__version__)} \(torch {re.escape(torch.__version__)}, Python .*\)\n",
        result.stdout,
    )


def test_train_help_lists_each_setting_once_with_its_doc_and_default():
    result = run_pydqn("train", "--help")
    assert result.returncode == 0
    text = result.stdout
    assert "SET:" not in text and "set:" not in text
    flags = re.findall(r"^\s+(--[a-z-]+)", text, flags=re.MULTILINE)
    assert len(flags) == len(set(flags))
    for gone in ("--env-id", "--asynchronous"):
        assert gone not in flags
    for flag, default in (
        ("--env", "ALE/Pong-v5"),
        ("--gamma", "0.99"),
        ("--total-steps", "10,000,000"),
        ("--async", "off"),
    ):
        entry = re.split(rf"\n  {flag}[ ,]", text, maxsplit=1)[1].split("\n  --", 1)[0]
        assert f"(default: {default}" in " ".join(entry.split()), flag
    assert "resumable" in text.split("--total-steps", 1)[1].split("--num-envs", 1)[0]
    for group in ("run settings", "replay settings", "learning settings", "evaluation settings"):
        assert f"\n{group}:\n" in text


# --- run folders: a new run never lands in an old one's folder ---------------------------------


def test_a_new_run_into_a_folder_holding_a_run_is_refused_and_changes_nothing(small_run, tmp_path, capsys):
    run = copy_run(small_run, tmp_path / "run")
    before = snapshot(run)
    code = main(["train", "--preset", "cartpole", "--run-dir", str(run), "--total-steps", "600"])
    err = capsys.readouterr().err
    assert code == 2 and f"run_dir: {run} holds a run already (config.toml, checkpoint.pt" in err
    assert f"--resume {run}" in err and "--overwrite" in err
    assert snapshot(run) == before


def test_overwrite_starts_over_with_none_of_the_old_runs_files(small_run, tmp_path, capsys):
    run = copy_run(small_run, tmp_path / "run")
    code = main(
        [
            "train",
            "--preset",
            "cartpole",
            "--run-dir",
            str(run),
            "--overwrite",
            "--total-steps",
            "600",
            "--learning-starts",
            "400",
            "--device",
            "cpu",
            "--no-tensorboard",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert not (run / "best.pt").exists()  # the old run's
    assert (run / "evals.csv").read_text().count("\n") == 1  # a header: no old evaluation
    steps = [int(line.split(",")[0]) for line in (run / "episodes.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and steps[-1] <= 600  # only the new run's episodes


def test_the_default_folder_moves_on_to_a_fresh_name(small_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    copy_run(small_run, tmp_path / "runs" / "CartPole-v1-1")
    before = snapshot(tmp_path / "runs" / "CartPole-v1-1")
    code = main(
        [
            "train",
            "--preset",
            "cartpole",
            "--total-steps",
            "300",
            "--learning-starts",
            "200",
            "--device",
            "cpu",
            "--no-tensorboard",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "run directory runs/CartPole-v1-1-2" in out
    assert snapshot(tmp_path / "runs" / "CartPole-v1-1") == before
    assert (tmp_path / "runs" / "CartPole-v1-1-2" / "checkpoint.pt").is_file()


def test_a_folder_in_use_by_another_process_is_refused(small_run, tmp_path):
    run = copy_run(small_run, tmp_path / "run")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pydqn.runs import RunClaim; RunClaim(sys.argv[1], resume=True); "
            "print('held', flush=True); time.sleep(60)",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",  # a checkout's root would import its source tree instead of the installed package
    )
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(run)
        result = run_pydqn("train", "--resume", str(run), "--total-steps", "2000")
        assert result.returncode == 2
        assert f"run_dir: {run} is in use by another pydqn process" in result.stderr
        assert snapshot(run) == before
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


# --- resume: extends a run, refuses what would change its network, buffer or env ---------------


def test_resume_with_total_steps_extends_the_run(small_run, tmp_path, capsys):
    run = copy_run(small_run, tmp_path / "run")
    code = main(["train", "--resume", str(run), "--total-steps", "1600", "--log-interval", "300"])
    out = capsys.readouterr().out
    assert code == 0 and f"resuming {run} at step 1,000" in out
    # No saved buffer: 500 steps refill it (learning_starts), 100 more make 50 updates.
    assert "trained 600 env steps (from step 1,000 to 1,600), 50 updates," in out
    from pydqn.runs import load_checkpoint
    from pydqn.training.config import parse_config

    state = load_checkpoint(run / "checkpoint.pt")
    config = parse_config(state["config"])
    assert state["step"] == 1_600 and (config.total_steps, config.log_interval) == (1_600, 300)
    assert config.schedule_steps == 1_000  # epsilon and beta go on where they were
    assert parse_config((run / "config.toml").read_text()) == config
    steps = [int(line.split(",")[0]) for line in (run / "episodes.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and steps[0] <= 1_000 < steps[-1]  # one log, appended


def test_an_edit_of_config_toml_counts_as_asked(small_run, tmp_path, capsys):
    run = copy_run(small_run, tmp_path / "run")
    toml = run / "config.toml"
    toml.write_text(toml.read_text().replace("total_steps = 1000", "total_steps = 1200"))
    assert main(["train", "--resume", str(run)]) == 0, capsys.readouterr().err
    from pydqn.runs import load_checkpoint

    assert load_checkpoint(run / "checkpoint.pt")["step"] == 1_200


def test_an_edit_of_config_toml_that_a_resume_cannot_take_names_the_file(small_run, tmp_path, capsys):
    run = copy_run(small_run, tmp_path / "run")
    toml = run / "config.toml"
    toml.write_text(toml.read_text().replace("n_step = 1", "n_step = 3"))
    before = snapshot(run)
    assert main(["train", "--resume", str(run), "--total-steps", "2000"]) == 2
    assert f"error: {toml}: n_step: a resumed run keeps the settings" in capsys.readouterr().err
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--gamma", "0.5"], "learner.gamma: a resumed run keeps the settings that decide its network"),
        (["--hidden-sizes", "32"], "hidden_sizes ((256, 256) -> (32,))"),
        (["--env", "Acrobot-v1"], "env_id ('CartPole-v1' -> 'Acrobot-v1')"),
        (["--buffer-size", "5000", "--n-step", "3"], "buffer_size, n_step: a resumed run keeps"),
        ([], "has trained its total_steps=1,000 (step 1,000); extend it with a larger total_steps"),
        (["--total-steps", "900"], "has trained its total_steps=900 (step 1,000)"),
        (["--total-steps", "2000", "--run-dir", "x"], "--run-dir: a resumed run keeps its folder"),
    ],
)
def test_resume_refuses_settings_it_cannot_change_and_changes_nothing(
    small_run, tmp_path, capsys, argv, message
):
    run = copy_run(small_run, tmp_path / "run")
    before = snapshot(run)
    code = main(["train", "--resume", str(run), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert snapshot(run) == before


# --- a run folder that cannot be written ---------------------------------------------------------


def test_a_full_disk_is_a_message_naming_the_file_and_the_last_checkpoint_survives(tmp_path):
    """A real EFBIG: the files a process may write are capped at 64 KiB (RLIMIT_FSIZE)."""
    import resource
    import signal

    def cap():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the cap fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    run = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pydqn",
            "train",
            "--preset",
            "cartpole",
            "--run-dir",
            str(run),
            "--total-steps",
            "1500",
            "--learning-starts",
            "500",
            "--checkpoint-interval",
            "500",
            "--device",
            "cpu",
            "--no-tensorboard",
            "--hidden-sizes",
            "64",
            "64",
        ],
        capture_output=True,
        text=True,
        cwd="/",
        preexec_fn=cap,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(r"cannot write \S+: File too large \(over the size limit for a file\)", result.stderr)
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]


def test_a_write_that_fails_names_the_file_and_keeps_the_previous_checkpoint(
    small_run, tmp_path, monkeypatch
):
    import errno

    from pydqn.runs import RunFileError, load_checkpoint, save_checkpoint

    run = copy_run(small_run, tmp_path / "run")
    before = snapshot(run)
    for code, words in (
        (errno.ENOSPC, "No space left on device (the disk or quota is full)"),
        (errno.EROFS, "Read-only file system"),
        (errno.EACCES, "Permission denied"),
    ):

        def refuse(*args, code=code, **kwargs):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(torch, "save", refuse)
        with pytest.raises(RunFileError) as info:
            save_checkpoint(run / "checkpoint.pt", {"step": 5})
        assert str(info.value) == (
            f"checkpoint: cannot write {run / 'checkpoint.pt'}: {words}; the previous version is intact"
        )
        assert snapshot(run) == before  # no temporary file left either
    monkeypatch.undo()
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 1_000
