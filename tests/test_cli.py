"""`pydqn bench` prints its comparison table; bad command lines get usage errors."""

import re

import pytest
import torch
from cli_helpers import run_pydqn

from pydqn.cli import main


@pytest.mark.slow
def test_bench_reports_every_operation(capsys):
    assert main(["bench", "--capacity", "1500", "--repeats", "5"]) == 0
    table = capsys.readouterr().out
    for operation in (
        "add 1 (num_envs=1)",
        "add 8 (num_envs=8)",
        "sample B=32",
        "sample B=256",
        "bytes per transition",
    ):
        row = next(line for line in table.splitlines() if line.startswith(operation))
        ratios = re.findall(r"(\d+\.\d+)x", row)
        assert ratios and all(float(r) > 0 for r in ratios), row
    memory = next(line for line in table.splitlines() if line.startswith("bytes per transition"))
    assert float(re.findall(r"(\d+\.\d+)x", memory)[0]) >= 4  # at most a quarter of the Python one


def test_bench_prioritized_reports_sample_and_update_against_python_and_uniform(capsys):
    assert main(["bench", "--prioritized", "--capacity", "4000", "--repeats", "5"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("Prioritized replay at capacity 4,000")
    for operation, ratios in (("sample B=32", 2), ("sample B=256", 2), ("update_priorities B=32", 1)):
        row = next(line for line in table if line.startswith(operation))
        found = re.findall(r"(\d+\.\d+)x", row)
        assert len(found) == ratios and all(float(r) > 0 for r in found), row


def test_bench_sample_device_compares_three_ways_to_deliver_batches(capsys):
    assert main(["bench", "--sample-device", "cpu", "--capacity", "1000", "--repeats", "5"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("Batches of (4, 84, 84) uint8 stacks delivered on cpu, capacity 1,000")
    for batch_size in (32, 256):
        row = next(line for line in table if line.startswith(f"B={batch_size} "))
        found = re.findall(r"(\d+\.\d+)x", row)
        assert len(found) == 2 and all(float(r) > 0 for r in found), row


def test_bench_sample_device_gives_the_python_buffer_its_own_capacity(capsys, monkeypatch):
    import pydqn.bench.device as device_bench

    filled = []
    fill = device_bench.fill

    def recording_fill(buffer, *args, **kwargs):
        filled.append((type(buffer).__name__, buffer.capacity))
        fill(buffer, *args, **kwargs)

    monkeypatch.setattr(device_bench, "fill", recording_fill)
    argv = ["bench", "--sample-device", "cpu", "--capacity", "1200", "--python-capacity", "400"]
    assert main([*argv, "--repeats", "2"]) == 0
    assert capsys.readouterr().out.startswith(
        "Batches of (4, 84, 84) uint8 stacks delivered on cpu, capacity 1,200 (PyReplayBuffer 400)"
    )
    assert filled == [("ReplayBuffer", 1200), ("ReplayBuffer", 1200), ("PyReplayBuffer", 400)]


@pytest.mark.parametrize(
    "argv,message",
    [
        ([], "the following arguments are required: COMMAND"),
        (["fly"], "invalid choice: 'fly'"),
        (["bench", "--capacity", "-5"], "argument --capacity: expected a positive integer, got '-5'"),
        (["bench", "--sample-device", "tpu"], "device: expected 'cpu' or a torch.device"),
        (["bench", "--repeats", "many"], "argument --repeats: expected a positive integer, got 'many'"),
        (
            ["bench", "--python-capacity", "0"],
            "argument --python-capacity: expected a positive integer, got '0'",
        ),
        (
            ["bench", "--python-capacity", "10"],
            "--python-capacity: sizes the Python buffer of --sample-device",
        ),
    ],
)
def test_bad_command_lines_are_usage_errors(argv, message):
    result = run_pydqn(*argv)
    assert result.returncode == 2
    error, *hint = result.stderr.splitlines()  # one line (and a hint), not the whole usage
    assert error.startswith("pydqn") and message in error and len(hint) <= 1


def test_bench_train_reports_both_buffers_and_the_time_split():
    result = run_pydqn(
        "bench",
        "--train",
        "--env",
        "CartPole-v1",
        "--steps",
        "600",
        "--learning-starts",
        "300",
        "--num-envs",
        "2",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Training loop on CartPole-v1: 2 envs" in lines[0] and "timed from the first update" in lines[0]
    assert lines[1].split() == [
        "variant",
        "frames/s",
        "updates/s",
        "seconds",
        "acting",
        "env",
        "buffer",
        "learning",
        "waiting",
        "other",
    ]
    variants = (
        "sync, PyReplayBuffer",
        "sync, C++ ReplayBuffer",
        "sync, C++, prioritized",
        "async, C++ ReplayBuffer",
    )
    for line, variant in zip(lines[2:6], variants, strict=True):
        assert line.startswith(variant)
        fps, updates, _seconds, *shares = line[len(variant) :].split()
        assert float(fps.replace(",", "")) > 0 and float(updates) > 0
        assert sum(float(s.rstrip("%")) for s in shares) == pytest.approx(100, abs=0.5)
    assert lines[6].startswith("frames/s vs the first row: sync, C++ ReplayBuffer ")


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["train", "--device", "gpu"],
            "device: expected 'cpu' or a torch.device such as 'cuda:0', got 'gpu'",
        ),
        (["evaluate", "/nonexistent", "--device", "gpu"], "device: expected 'cpu' or a torch.device"),
    ],
)
def test_a_device_that_does_not_parse_is_one_usage_error(argv, message):
    result = run_pydqn(*argv)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a CUDA device")
def test_cuda_asked_for_on_a_machine_without_it_is_one_usage_error():
    result = run_pydqn("train", "--device", "cuda")
    assert result.returncode == 2
    assert "device: 'cuda' was asked for, but torch sees no CUDA device" in result.stderr
    assert "Traceback" not in result.stderr
