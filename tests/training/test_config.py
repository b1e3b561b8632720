"""Training configuration: presets, TOML round trip, overrides and their errors."""

import dataclasses

import numpy as np
import pytest

from pydqn.agent.learner import LearnerConfig
from pydqn.settings import SettingError, setting_fields
from pydqn.training.config import (
    GROUPS,
    PRESETS,
    ConfigFileError,
    TrainConfig,
    build_config,
    resumed_config,
    to_toml,
)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_resolve_and_round_trip_through_toml(tmp_path, preset):
    config = build_config(preset)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    assert build_config(toml_path=path) == config


def test_layers_apply_in_order(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("batch_size = 64\n[learner]\nlearning_rate = 0.001\n")
    config = build_config("cartpole", {"seed": 7, "learner": {"double": False}}, toml_path=path)
    assert (config.env_id, config.batch_size, config.seed) == ("CartPole-v1", 64, 7)
    assert config.learner.learning_rate == 0.001 and config.learner.double is False
    # From the preset, untouched by the later layers:
    assert config.learner.target_update_interval == PRESETS["cartpole"]["learner"]["target_update_interval"]
    assert TrainConfig().learner.double is True


NAN, INF = float("nan"), float("inf")
# (overrides, what the message says): every kind of bad value, for settings of every kind.
BAD_SETTINGS = [
    ({"batch_sise": 3}, "batch_sise: unknown setting"),
    ({"learner": {"lr": 1}}, "learner.lr: unknown setting"),
    ({"learner": 3}, "learner: expected a table of settings, got 3"),
    ({"num_envs": 0}, "num_envs: expected a value in [1, 1024], got 0"),
    ({"num_envs": 10**6}, "num_envs: expected a value in [1, 1024], got 1000000"),
    ({"total_steps": 96.7}, "total_steps: expected an integer, got 96.7"),
    ({"total_steps": True}, "total_steps: expected an integer, got True"),
    ({"total_steps": "96"}, "total_steps: expected an integer, got '96'"),
    ({"total_steps": 0}, "total_steps: expected a value in [1, 10^12], got 0"),
    ({"total_steps": 10**13}, "total_steps: expected a value in [1, 10^12]"),
    ({"seed": -1}, "seed: expected a value in [0, 1,073,741,824], got -1"),
    ({"seed": 2**31}, "seed: expected a value in [0, 1,073,741,824]"),
    ({"torch_threads": -1}, "torch_threads: expected a value in [0, 1024], got -1"),
    ({"torch_threads": 10**6}, "torch_threads: expected a value in [0, 1024]"),
    ({"buffer_size": 0}, "buffer_size: expected a value in [1, "),
    ({"buffer_size": 2**40}, "buffer_size: expected a value in [1, "),
    ({"batch_size": 0}, "batch_size: expected a value in [1, 65,536], got 0"),
    (
        {"batch_size": 200, "buffer_size": 100, "learning_starts": 500},
        "batch_size: expected at most buffer_size=100",
    ),
    ({"learning_starts": 10, "batch_size": 32}, "learning_starts: expected at least batch_size=32"),
    ({"n_step": 0}, "n_step: expected a value in [1, 64], got 0"),
    ({"n_step": 65}, "n_step: expected a value in [1, 64], got 65"),
    ({"epsilon_end": 1.5}, "epsilon_end: expected a value in [0, 1], got 1.5"),
    ({"epsilon_start": NAN}, "epsilon_start: expected a value in [0, 1], got nan"),
    ({"eval_epsilon": -0.1}, "eval_epsilon: expected a value in [0, 1], got -0.1"),
    ({"priority_alpha": 1.5}, "priority_alpha: expected a value in [0, 1], got 1.5"),
    ({"priority_epsilon": 0.0}, "priority_epsilon: expected a value in (0, 1], got 0.0"),
    ({"priority_epsilon": INF}, "priority_epsilon: expected a value in (0, 1], got inf"),
    ({"priority_epsilon": NAN}, "priority_epsilon: expected a value in (0, 1], got nan"),
    ({"eval_interval": -5}, "eval_interval: expected a value in [0, 10^12], got -5"),
    ({"eval_episodes": 0}, "eval_episodes: expected a value in [1, 100,000], got 0"),
    ({"checkpoint_interval": 0}, "checkpoint_interval: expected a value in [1, 10^12], got 0"),
    ({"dueling": "yes"}, "dueling: expected true or false, got 'yes'"),
    ({"dueling": 1}, "dueling: expected true or false, got 1"),
    ({"batch_size": "many"}, "batch_size: expected an integer, got 'many'"),
    ({"replay": "rust"}, "replay: expected one of 'cpp', 'python', got 'rust'"),
    ({"env_id": 5}, "env_id: expected a string, got 5"),
    ({"device": ["cpu"]}, "device: expected a string, got ['cpu']"),
    ({"hidden_sizes": []}, "hidden_sizes: expected a list of integers, got []"),
    ({"hidden_sizes": [64, 1.5]}, "hidden_sizes: expected a list of integers, got [64, 1.5]"),
    ({"hidden_sizes": "big"}, "hidden_sizes: expected a list of integers, got 'big'"),
    ({"hidden_sizes": [64, 0]}, "hidden_sizes: expected items in [1, 65,536], got [64, 0]"),
    ({"hidden_sizes": [10**6]}, "hidden_sizes: expected items in [1, 65,536]"),
    ({"hidden_sizes": [8] * 17}, "hidden_sizes: expected at most 16 layers, got 17"),
    ({"learner": {"gamma": NAN}}, "learner.gamma: expected a value in [0, 1], got nan"),
    ({"learner": {"gamma": 1.5}}, "learner.gamma: expected a value in [0, 1], got 1.5"),
    ({"learner": {"learning_rate": 0}}, "learner.learning_rate: expected a value in (0, 1], got 0"),
    ({"learner": {"learning_rate": -1e-4}}, "learner.learning_rate: expected a value in (0, 1]"),
    ({"learner": {"learning_rate": INF}}, "learner.learning_rate: expected a value in (0, 1], got inf"),
    ({"learner": {"adam_eps": 0.0}}, "learner.adam_eps: expected a value in (0, 1], got 0.0"),
    ({"learner": {"rmsprop_alpha": 1.0}}, "learner.rmsprop_alpha: expected a value in [0, 1), got 1.0"),
    ({"learner": {"rmsprop_eps": -0.01}}, "learner.rmsprop_eps: expected a value in (0, 1]"),
    (
        {"learner": {"max_grad_norm": NAN}},
        "learner.max_grad_norm: expected a value in (0, 1,000,000], got nan",
    ),
    ({"learner": {"max_grad_norm": 0.0}}, "learner.max_grad_norm: expected a value in (0, 1,000,000]"),
    (
        {"learner": {"target_update_interval": 0}},
        "learner.target_update_interval: expected a value in [1, 10^12]",
    ),
    ({"learner": {"tau": 0.0}}, "learner.tau: expected a value in (0, 1], got 0.0"),
    ({"learner": {"tau": 1.5}}, "learner.tau: expected a value in (0, 1], got 1.5"),
    ({"learner": {"optimizer": "sgd"}}, "learner.optimizer: expected one of 'adam', 'rmsprop', got 'sgd'"),
    ({"learner": {"loss": "l1"}}, "learner.loss: expected one of 'huber', 'mse', got 'l1'"),
    ({"learner": {"double": "false"}}, "learner.double: expected true or false, got 'false'"),
]


@pytest.mark.parametrize("overrides,message", BAD_SETTINGS)
def test_bad_settings_name_the_setting(overrides, message):
    with pytest.raises(SettingError) as info:
        build_config(overrides=overrides)
    assert message in str(info.value)


@pytest.mark.parametrize("overrides,message", BAD_SETTINGS)
def test_a_bad_setting_in_a_toml_file_names_the_file_and_the_setting(tmp_path, overrides, message):
    path = tmp_path / "bad.toml"
    path.write_text(to_toml_layer(overrides))
    with pytest.raises(SettingError) as info:
        build_config(toml_path=path)
    assert message in str(info.value)
    if "at most" not in message and "at least" not in message:  # the cross-setting rules name no file
        assert str(path) in str(info.value)


def to_toml_layer(overrides) -> str:
    """``overrides`` as a TOML file (NaN and inf as TOML spells them)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and v != v:
            return "nan"
        if v == INF:
            return "inf"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines, tables = [], []
    for key, v in overrides.items():
        if isinstance(v, dict):
            tables += [f"[{key}]"] + [f"{k} = {value(x)}" for k, x in v.items()]
        else:
            lines.append(f"{key} = {value(v)}")
    return "\n".join(lines + tables) + "\n"


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "config: {path} does not exist"),
        ("total_steps = = 3", "config: {path} is not valid TOML"),
        (b"\xff\xfe", "config: cannot read {path}"),
    ],
)
def test_a_toml_file_that_cannot_be_read_is_named(tmp_path, content, message):
    path = tmp_path / "settings.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigFileError) as info:
        build_config(toml_path=path)
    assert message.format(path=path) in str(info.value)


def test_every_setting_is_documented_and_checked_when_built_directly():
    for config_class in (TrainConfig, LearnerConfig):
        for field, _hint in setting_fields(config_class):
            if field.name != "learner":
                assert field.metadata["doc"] and field.metadata["group"] in GROUPS, field.name
    with pytest.raises(SettingError, match=r"learner\.gamma: expected a value in"):
        TrainConfig(learner=LearnerConfig(gamma=NAN)).validate()
    with pytest.raises(SettingError, match="total_steps: expected an integer"):
        TrainConfig(total_steps=96.7).validate()  # type: ignore[arg-type]


def test_validate_gives_values_as_their_types_hold_them():
    config = TrainConfig(num_envs=np.int64(2), hidden_sizes=[64, np.int32(32)], seed=np.uint8(7)).validate()  # type: ignore[arg-type]
    assert (type(config.num_envs), type(config.seed), config.hidden_sizes) == (int, int, (64, 32))
    assert all(type(size) is int for size in config.hidden_sizes)
    learner = LearnerConfig(gamma=1, target_update_interval=np.int64(5)).validate()  # type: ignore[arg-type]
    assert (type(learner.gamma), type(learner.target_update_interval)) == (float, int)


def test_resumed_config_changes_resumable_settings_and_refuses_the_others():
    saved = build_config("cartpole")
    longer = resumed_config(saved, dataclasses.replace(saved, total_steps=200_000, log_interval=7))
    assert (longer.total_steps, longer.log_interval) == (200_000, 7)
    assert longer.schedule_steps == saved.total_steps  # the schedules keep their length
    assert longer.schedule_length == saved.total_steps and saved.schedule_length == saved.total_steps
    stretched = resumed_config(saved, dataclasses.replace(saved, total_steps=200_000, schedule_steps=200_000))
    assert stretched.schedule_steps == 200_000  # asked for explicitly
    changed = dataclasses.replace(
        saved, total_steps=200_000, n_step=3, learner=dataclasses.replace(saved.learner, gamma=0.5)
    )
    with pytest.raises(SettingError) as info:
        resumed_config(saved, changed)
    message = str(info.value)
    assert message.startswith("n_step, learner.gamma: a resumed run keeps")
    assert "n_step (1 -> 3)" in message and "learner.gamma (0.99 -> 0.5)" in message
    assert "total_steps" in message.split("Resumable: ")[1]


def test_unknown_preset():
    with pytest.raises(ValueError, match="preset: expected one of"):
        build_config("rainbow")


def test_rainbow_lite_sets_only_its_components_so_it_stacks_on_an_env_preset():
    alone, stacked = build_config("rainbow-lite"), build_config(["cartpole", "rainbow-lite"])
    for config in (alone, stacked):
        assert (config.dueling, config.n_step, config.prioritized) == (True, 3, True)
        assert (config.priority_alpha, config.priority_beta, config.learner.double) == (0.5, 0.4, True)
    assert alone.env_id == TrainConfig().env_id
    assert stacked.env_id == "CartPole-v1"
    assert stacked.learner.learning_rate == build_config("cartpole").learner.learning_rate


def test_component_presets_apply_after_env_presets_whatever_the_order():
    assert build_config(["rainbow-lite", "cartpole"]) == build_config(["cartpole", "rainbow-lite"])
