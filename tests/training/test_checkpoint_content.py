"""A checkpoint that is a valid archive with the wrong content, or whose bytes changed, is refused
with a message naming the file and the field, by `evaluate` and by a resume, and nothing changes."""

import copy

import numpy as np
import pytest
import torch
from cli_helpers import copy_run, snapshot

from pydqn.cli import main
from pydqn.runs import CheckpointError, load_checkpoint, save_checkpoint
from pydqn.training.config import build_config, to_toml
from pydqn.training.resume import read_run_checkpoint


def other_config(**overrides):
    return to_toml(build_config("cartpole", {"device": "cpu", **overrides}))


def with_optimizer_moment_of_the_wrong_shape(state):
    moments = state["learner"]["optimizer"]["state"][0]
    moments["exp_avg"] = torch.zeros(3)


# (how the state is changed, what the message says)
TAMPERED = [
    (lambda s: s.pop("learner"), "learner: missing"),
    (lambda s: s.pop("step"), "step: missing"),
    (lambda s: s.update(step=-1), "step: expected an integer in [0, 1,000,000,000,000], got -1"),
    (lambda s: s.update(step=2**62), "step: expected an integer in [0, 1,000,000,000,000]"),
    (lambda s: s.update(step=1.5), "step: expected an integer, got float"),
    (lambda s: s.update(step=True), "step: expected an integer, got bool"),
    (lambda s: s.update(episodes="3"), "episodes: expected an integer, got str"),
    (lambda s: s.update(best_eval=float("nan")), "best_eval: expected a mean return or -inf"),
    (lambda s: s.update(config="total_steps = = 1"), "config: "),
    (
        lambda s: s.update(config=other_config().replace("gamma = 0.99", "gamma = 3.0")),
        "config: learner.gamma",
    ),
    (lambda s: s.update(config=7), "config: expected a string, got int"),
    (lambda s: s.update(rng={"bit_generator": "MT19937"}), "rng: not a numpy PCG64 state"),
    (lambda s: s["rng"]["state"].update(state=-1), "rng: not a numpy PCG64 state"),
    (lambda s: s.update(rng=[1, 2]), "rng: expected a table, got list"),
    (
        lambda s: s.update(torch_rng=torch.zeros(3, dtype=torch.uint8)),
        "torch_rng: expected a torch.uint8 tensor of shape",
    ),
    (lambda s: s.update(torch_rng=torch.zeros(5056)), "torch_rng: expected a torch.uint8 tensor"),
    (lambda s: s["learner"].pop("optimizer"), "learner state: expected the parts"),
    (lambda s: s["learner"].update(updates=-4), "learner state: updates: expected an integer >= 0, got -4"),
    (lambda s: s["learner"]["online"].pop("torso.0.weight"), "not a checkpoint of this run's network"),
    (with_optimizer_moment_of_the_wrong_shape, "optimizer exp_avg: shape (3,) for a parameter of shape"),
    (lambda s: s.update(config=other_config(env_id="Acrobot-v1")), "not a checkpoint of this run's network"),
    (lambda s: s.update(config=other_config(hidden_sizes=(32,))), "not a checkpoint of this run's network"),
    (lambda s: s.update(config=other_config(dueling=True)), "not a checkpoint of this run's network"),
]


@pytest.fixture
def run(small_run, tmp_path):
    return copy_run(small_run, tmp_path / "run")


@pytest.mark.parametrize("change,message", TAMPERED)
def test_evaluate_refuses_a_checkpoint_with_the_wrong_content(run, capsys, change, message):
    state = load_checkpoint(run / "best.pt")
    change(state)
    save_checkpoint(run / "best.pt", state)  # a valid archive with a valid checksum
    before = snapshot(run)
    assert main(["evaluate", str(run), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pydqn evaluate: error: checkpoint: {run / 'best.pt'} is not a checkpoint of ")
    assert message in err and len(err.splitlines()) == 1
    assert snapshot(run) == before


# A resumed run reads its settings from config.toml too: the cases of a changed config are evaluate's.
RESUME_CASES = [TAMPERED[i] for i in (0, 2, 4, 7, 11, 12, 14, 16, 17, 18, 19)]


@pytest.mark.parametrize("change,message", RESUME_CASES)
def test_resume_refuses_a_checkpoint_with_the_wrong_content(run, capsys, change, message):
    state = load_checkpoint(run / "checkpoint.pt")
    change(state)
    save_checkpoint(run / "checkpoint.pt", state)
    before = snapshot(run)
    assert main(["train", "--resume", str(run), "--total-steps", "2000"]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint: {run / 'checkpoint.pt'} is not a checkpoint of" in err and message in err
    assert snapshot(run) == before


def test_a_changed_byte_in_a_weight_is_detected(run, capsys):
    path = run / "best.pt"
    weight = load_checkpoint(path)["learner"]["online"]["torso.0.weight"]
    data = bytearray(path.read_bytes())
    at = bytes(data).find(weight.numpy().tobytes())  # torch stores tensor bytes uncompressed
    assert at > 0
    data[at + 5] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="is damaged: its content does not match the checksum"):
        read_run_checkpoint(path)
    assert main(["evaluate", str(run)]) == 2
    assert "is damaged" in capsys.readouterr().err


def test_checkpoints_of_pydqn_0_1_without_a_checksum_still_load(run):
    state = load_checkpoint(run / "checkpoint.pt")
    torch.save({"format": "pydqn-checkpoint", "version": 1, **state}, run / "old.pt")
    point = read_run_checkpoint(run / "old.pt")
    assert point.state["step"] == state["step"]
    torch.save({"format": "pydqn-checkpoint", "version": 99, **state}, run / "future.pt")
    with pytest.raises(CheckpointError, match="has format version 99, this pydqn reads versions 1, 2"):
        load_checkpoint(run / "future.pt")


def test_a_refused_learner_state_leaves_the_learner_as_it_was(run):
    from pydqn.training.components import make_learner, make_run_env

    point = read_run_checkpoint(run / "checkpoint.pt")
    env = make_run_env(point.config, 1, 0)
    learner = make_learner(point.config, env, "cpu")
    env.close()
    before = copy.deepcopy(learner.state_dict())
    bad = copy.deepcopy(point.state["learner"])
    with_optimizer_moment_of_the_wrong_shape({"learner": bad})
    with pytest.raises(ValueError, match="optimizer exp_avg"):
        learner.load_state_dict(bad)
    after = learner.state_dict()
    for part in ("online", "target"):
        for name, tensor in before[part].items():
            assert torch.equal(tensor, after[part][name])
    assert (
        after["optimizer"]["state"] == before["optimizer"]["state"] and after["updates"] == before["updates"]
    )
    assert np.isfinite(learner.online(torch.zeros(1, 4)).detach().numpy()).all()
