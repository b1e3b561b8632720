"""Training configuration: presets, TOML round trip, overrides and their errors."""

import pytest

from pydqn.training.config import PRESETS, TrainConfig, build_config, to_toml


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


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"batch_sise": 3}, "batch_sise: unknown setting"),
        ({"learner": {"lr": 1}}, "learner.lr: unknown setting"),
        ({"num_envs": 0}, "num_envs: expected a positive integer, got 0"),
        ({"epsilon_end": 1.5}, "epsilon_end: expected a value in [0, 1]"),
        ({"dueling": "yes"}, "dueling: expected true or false"),
        ({"batch_size": "many"}, "batch_size: expected an integer, got 'many'"),
        ({"learning_starts": 10, "batch_size": 32}, "learning_starts: expected at least batch_size=32"),
        ({"priority_alpha": 1.5}, "priority_alpha: expected a value in [0, 1], got 1.5"),
        ({"priority_epsilon": 0.0}, "priority_epsilon: expected a value > 0"),
    ],
)
def test_bad_settings_name_the_setting(overrides, message):
    with pytest.raises(ValueError) as info:
        build_config(overrides=overrides)
    assert message in str(info.value)


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
