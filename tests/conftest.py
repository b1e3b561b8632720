import os

import pytest
from hypothesis import HealthCheck, settings

# CI runs a fixed set of examples so a red build can be reproduced; locally, explore.
settings.register_profile("ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Few examples, for slow runs (compute-sanitizer over the CUDA tests, scripts/gpu_proof.sh).
settings.register_profile("few", max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def cuda_ready() -> bool:
    """A GPU is visible and pydqn was built with its CUDA kernels."""
    import torch

    from pydqn._extension import load_extension

    return torch.cuda.is_available() and load_extension().WITH_CUDA


def pytest_runtest_setup(item):
    if item.get_closest_marker("cuda") is not None and not cuda_ready():
        # Skipped here before pytest looks up its fixtures: check them now, or a GPU would be
        # the first to find one missing.
        fixtures = getattr(item, "_fixtureinfo", None)  # pytest keeps it private: best effort
        known = fixtures.name2fixturedefs if fixtures is not None else item.fixturenames
        missing = [name for name in item.fixturenames if name not in known and name != "request"]
        if missing:
            pytest.fail(f"{item.nodeid}: no fixture named {', '.join(missing)}")
        if os.environ.get("PYDQN_REQUIRE_CUDA") == "1":
            pytest.fail("PYDQN_REQUIRE_CUDA=1 but no CUDA device (or pydqn was built without CUDA)")
        pytest.skip("needs a CUDA device and pydqn built with CUDA")


@pytest.fixture
def cuda_device():
    """The GPU, with its index (``cuda:0``), as the tensors made there report their device."""
    from pydqn.device import resolve_device

    return resolve_device("cuda")


# A finished CartPole run (1,000 env steps, checkpoints, logs, a periodic evaluation), trained once
# per session; tests that change a run copy it with `copy_run`.
SMALL_RUN = {
    "total_steps": 1_000,
    "learning_starts": 500,
    "checkpoint_interval": 500,
    "log_interval": 500,
    "eval_interval": 500,
    "eval_episodes": 2,
    "device": "cpu",
    "tensorboard": False,
}


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    from pydqn.training import build_config, train

    run = tmp_path_factory.mktemp("small") / "run"
    train(build_config("cartpole", SMALL_RUN), run)
    return run


@pytest.fixture(scope="session", autouse=True)
def sb3_logs_in_pytest_tmp(tmp_path_factory):
    """SB3 logs each model to a new /tmp/SB3-<time> folder unless SB3_LOGDIR names one: keep them
    in pytest's temporary folders, which pytest prunes."""
    previous = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3-logs"))
    yield
    if previous is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = previous
