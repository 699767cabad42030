"""Settings: precedence, validation messages, presets as data."""

from __future__ import annotations

import pytest
import tomllib

from stereoconv.config import PipelineConfig, load_config, parse_time, preset_names, read_preset, to_toml
from stereoconv.errors import ConfigError


def test_precedence_defaults_preset_file_flags(tmp_path):
    defaults = PipelineConfig()
    action = load_config("action")
    assert action.temporal.strength == read_preset("action")["temporal"]["strength"] != defaults.temporal.strength
    assert action.depth.batch_size == defaults.depth.batch_size  # not in the preset: the default

    file = tmp_path / "mine.toml"
    file.write_text('preset = "action"\n[stereo]\nmax_negative_parallax = 0.8\n[temporal]\nstrength = 0.3\n')
    from_file = load_config(config_file=file)
    assert from_file.stereo.max_negative_parallax == 0.8 and from_file.temporal.strength == 0.3
    assert from_file.temporal.color_sigma == action.temporal.color_sigma  # the file's preset underneath

    flagged = load_config("documentary", file, {"stereo.max_negative_parallax": 2.2})
    assert flagged.stereo.max_negative_parallax == 2.2  # flags beat the file
    assert flagged.temporal.strength == 0.3  # the file beats the preset
    assert flagged.temporal.color_sigma == read_preset("documentary")["temporal"]["color_sigma"]  # --preset wins


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"temporal.strength": 1.5}, "temporal.strength = 1.5 is out of range: allowed 0.0..0.99"),
        ({"output.format": "checkerboard"}, "output.format = 'checkerboard' is not allowed: choose one of half-sbs"),
        ({"depth.batch_size": -1}, "depth.batch_size = -1 is out of range: allowed 0..256 frames"),
        ({"depth.fp16": 1}, "depth.fp16 = 1 is not a bool"),
        ({"depth.batch_size": 2.5}, "depth.batch_size = 2.5 is not a int"),
        ({"colour.x": 1}, "unknown section [colour]"),
        ({"temporal.sigma": 1}, "unknown setting temporal.sigma: allowed low_percentile"),
        ({"media.start": 5.0, "media.end": 2.0}, "media.end = 2.0 must be after media.start = 5.0"),
        ({"stereo.convergence": 0.6}, "stereo.convergence = 0.6 is not a str"),
        ({"stereo.convergence": "centre"}, "stereo.convergence = 'centre' is not allowed: choose one of percentile"),
        ({"stereo.interocular": 63}, "stereo.interocular = 63.0 is out of range: allowed 0.03..0.1 m"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(overrides, message):
    with pytest.raises(ConfigError) as exc:
        PipelineConfig().replace(overrides)
    assert message in str(exc.value)


def test_unknown_key_in_a_config_file_is_refused(tmp_path):
    file = tmp_path / "bad.toml"
    file.write_text("[stereo]\nmax_negative_paralax = 2.0\n")
    with pytest.raises(ConfigError, match=r"unknown setting stereo\.max_negative_paralax"):
        load_config(config_file=file)
    file.write_text("[stereo\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(config_file=file)


def test_presets_are_valid_and_differ_where_it_matters():
    names = preset_names()
    assert {"film", "documentary", "action", "animation"} <= set(names)
    configs = {name: load_config(name) for name in names}
    assert load_config() == configs["film"]
    assert len({c.temporal.strength for c in configs.values()}) > 1
    assert len({c.stereo.max_negative_parallax for c in configs.values()}) > 1
    assert configs["action"].temporal.strength < configs["documentary"].temporal.strength
    for name in names:
        assert read_preset(name).get("description"), f"preset {name} has no description"


@pytest.mark.parametrize("name", ["film", "action", "documentary", "animation"])
def test_presets_show_round_trips(name):
    config = load_config(name, overrides={"media.end": 12.5})
    data = tomllib.loads(to_toml(config))
    assert PipelineConfig.from_dict(data) == config


def test_configs_are_frozen():
    config = PipelineConfig()
    with pytest.raises(AttributeError):
        config.stereo.max_negative_parallax = 5.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("12.5", 12.5), ("90", 90.0), ("01:30", 90.0), ("00:01:02.250", 62.25), ("1:00:00", 3600.0), (7, 7.0)],
)
def test_parse_time(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1:60", "01:60:00", "-3", "1:2:3:4"])
def test_parse_time_rejects(text):
    with pytest.raises(ConfigError, match="is not a time"):
        parse_time(text)
