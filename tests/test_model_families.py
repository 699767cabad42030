"""Every depth model family transformers maps: loaded, run at its own input size, read the right way round.

The matrix builds a tiny random-weight model of each family (tests/depth_zoo.py, with the processor configs the
published checkpoints carry), checks orientation with a known output map in the family's own units (one half 1, the
other 10: the right half must come out nearer) and converts a 2-frame clip through the command line with default
settings. ``python benchmarks/model_matrix.py`` prints the same matrix as a table.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from depth_zoo import SAMPLES, installed_model_types, make_matrix_clip, missing_reason, run_sample

from stereoconv.cli import main
from stereoconv.config import ConfigError, DepthConfig, PipelineConfig
from stereoconv.depth import load_estimator, model_fingerprint
from stereoconv.errors import ModelError
from stereoconv.models import CHECKPOINTS, FAMILIES, METRIC_FLOOR, models_table, resolve


@pytest.fixture(scope="module")
def matrix_clip(tmp_path_factory):
    return make_matrix_clip(tmp_path_factory.mktemp("matrix") / "clip.mp4")


def test_every_installed_family_is_in_the_table_and_the_matrix():
    installed = installed_model_types()
    assert set(installed) <= set(FAMILIES), f"families missing from stereoconv.models: {set(installed) - set(FAMILIES)}"
    assert set(installed) <= {s.model_type for s in SAMPLES}


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_matrix(sample, matrix_clip, tmp_path):
    if (reason := missing_reason(sample)) is not None:
        pytest.skip(reason)
    row = run_sample(sample, tmp_path, matrix_clip)
    assert "internal error" not in row.message
    if sample.expect_refused:
        assert row.exit == 4 and sample.expect_refused in row.message
        assert row.message.count("stereoconv: error:") == 1
        return
    assert row.exit == 0, row.message
    assert row.orientation == "right nearer"
    assert row.output == sample.units
    assert row.input_size.split()[0] == sample.expect_input


def test_a_fractional_multiple_is_read_as_transformers_does_with_a_note():
    spec = resolve({"model_type": "zoedepth"}, {"ensure_multiple_of": 1 / 32}, name="zoe")
    assert spec.prep.multiple == 32  # ZoeDepth's own granularity still applies
    assert any("ensure_multiple_of = 0.03125 is below 1 pixel" in n for n in spec.notes)


@pytest.mark.parametrize(
    ("processor", "message"),
    [
        ({"ensure_multiple_of": 0}, "ensure_multiple_of = 0 is not a positive number of pixels"),
        ({"ensure_multiple_of": "14"}, "ensure_multiple_of = '14' is not a positive number of pixels"),
        ({"ensure_multiple_of": 14.5}, "ensure_multiple_of = 14.5 is not a whole number of pixels"),
        ({"size_divisor": -32}, "size_divisor = -32 is not a positive number of pixels"),
        ({"resample": 9}, "resample = 9 is not a PIL resampling filter"),
        ({"size": {"longest_edge": 500}}, "size = {'longest_edge': 500} has no height, width or shortest_edge"),
        ({"size": "big"}, "size = 'big' is not a size in pixels"),
        ({"image_std": [0.2, 0.0, 0.2]}, "image_std = [0.2, 0.0, 0.2] must be positive"),
        ({"image_mean": [0.5, 0.5]}, "image_mean = [0.5, 0.5] is not 3 numbers"),
        ({"rescale_factor": 0}, "rescale_factor = 0 is not a positive number"),
    ],
)
def test_odd_processor_values_are_refused_in_one_line_naming_the_value(processor, message):
    with pytest.raises(ModelError, match=r"^m: preprocessor_config\.json ") as info:
        resolve({"model_type": "depth_anything"}, processor, name="m")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_odd_model_config_values_are_refused_in_one_line():
    with pytest.raises(ModelError, match=r"config image_size = 'x' is not a size in pixels"):
        resolve({"model_type": "dpt", "is_hybrid": True, "image_size": "x"}, {}, name="m")
    with pytest.raises(ModelError, match=r"scaled_images_ratios = \[0, 1\] must lie in \(0, 1\]"):
        resolve({"model_type": "depth_pro", "scaled_images_ratios": [0, 1]}, {}, name="m")


def test_fixed_size_models_ignore_input_size_with_a_note():
    spec = resolve({"model_type": "dpt", "is_hybrid": True, "image_size": 384}, {"size": 384}, 518, name="m")
    assert spec.prep.input_shape(720, 1280) == (384, 384)
    assert spec.notes == ("depth.input_size = 518 is ignored: DPT / MiDaS v3 runs at its fixed 384x384",)
    pro = resolve({"model_type": "depth_pro", "patch_size": 384, "scaled_images_ratios": [0.25, 0.5, 1]}, {})
    assert pro.prep.input_shape(1080, 1920) == (1536, 1536) and pro.output == "inverse"


def test_input_size_means_the_short_side_or_the_square_side():
    da = resolve({"model_type": "depth_anything"}, {"size": {"height": 518, "width": 518}, "keep_aspect_ratio": True,
                                                     "ensure_multiple_of": 14}, 266)  # fmt: skip
    assert da.prep.input_shape(720, 1280) == (266, 476)
    vit = resolve({"model_type": "dpt"}, {"size": 384, "keep_aspect_ratio": True}, 500)
    assert vit.prep.input_shape(720, 1280) == (512, 512)  # a ViT DPT needs a square, a multiple of 32
    glpn = resolve({"model_type": "glpn"}, {"size_divisor": 32})
    assert glpn.prep.input_shape(720, 1280) == (736, 1280)  # the frame's own size, to the nearest multiple of 32


def test_an_unknown_family_loads_with_a_note_saying_what_was_assumed():
    spec = resolve({"model_type": "future_depth"}, {"size": {"height": 392, "width": 392}}, name="m")
    assert spec.output == "inverse" and spec.prep.input_size == 392
    assert len(spec.notes) == 1 and "'future_depth' of m is not in stereoconv's table" in spec.notes[0]
    assert "assumed its output is relative inverse depth" in spec.notes[0]


def test_output_setting_overrides_the_table_and_inverts_metric(tiny_model):
    relative = load_estimator(DepthConfig(model=str(tiny_model), input_size=28, device="cpu"))
    metric = load_estimator(DepthConfig(model=str(tiny_model), input_size=28, device="cpu", output="metric"))
    assert relative.spec.output == "inverse" and metric.spec.output == "metric" and metric.metric
    assert "depth.output = metric" in metric.spec.describe()
    frame = [np.random.default_rng(3).integers(0, 256, (28, 28, 3), dtype=np.uint8)]
    np.testing.assert_allclose(metric(frame)[0], 1 / np.maximum(relative(frame)[0], METRIC_FLOOR), rtol=1e-3)
    with pytest.raises(ConfigError, match=r"depth\.output = 'depth' is not allowed: choose one of auto, inverse"):
        PipelineConfig().replace({"depth.output": "depth"})


def test_fingerprint_changes_with_output_and_effective_input_size(tiny_model):
    base = model_fingerprint(str(tiny_model))
    assert model_fingerprint(str(tiny_model), 518) == base  # the processor's own size: the same raw output
    assert model_fingerprint(str(tiny_model), None, "inverse") == base
    assert model_fingerprint(str(tiny_model), None, "metric") != base
    assert model_fingerprint(str(tiny_model), 266) != base


def test_fingerprint_refuses_what_loading_refuses(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "chmv2"}))
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelError, match="canopy height"):
        model_fingerprint(str(tmp_path))


def test_models_command_lists_families_checkpoints_licences_and_download_lines(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for family in FAMILIES:
        assert f"\n{family} (" in out
    for checkpoint in CHECKPOINTS:
        assert f"hf download {checkpoint.repo} --local-dir " in out
    assert "CC-BY-NC-4.0" in out and "Apache-2.0" in out and "huggingface-cli" not in out
    assert models_table(["depth_anything", "novel_depth"]).count("novel_depth: not in stereoconv's table") == 1


def test_offline_message_uses_the_hf_command(monkeypatch):
    import huggingface_hub

    def unreachable(self, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
    with pytest.raises(ModelError, match=r"run `hf download someone/depth --local-dir DIR`"):
        load_estimator(DepthConfig(model="someone/depth", device="cpu"))


def test_what_was_assumed_reaches_the_conversion_notes(matrix_clip, tmp_path):
    from stereoconv.api import convert

    hybrid = next(s for s in SAMPLES if s.name.startswith("DPT-hybrid"))
    if (reason := missing_reason(hybrid)) is not None:
        pytest.skip(reason)
    model = hybrid.save(tmp_path / "model")
    config = PipelineConfig().replace({"depth.model": str(model), "depth.input_size": 56, "depth.device": "cpu",
                                       "output.preset": "ultrafast"})  # fmt: skip
    result = convert(matrix_clip, tmp_path / "out.mkv", config)
    assert result.frames == 2
    assert "depth.input_size = 56 is ignored: DPT / MiDaS v3 runs at its fixed 64x64" in result.notes


def test_zoedepth_padding_is_cropped_off_the_output():
    import torch

    from stereoconv.depth import crop_padding, preprocess

    prep = resolve({"model_type": "zoedepth"}, {"ensure_multiple_of": 32, "do_pad": True}).prep
    assert prep.pad_reflect and prep.padding(64, 96) == (16, 20)
    x = preprocess(torch.zeros((1, 64, 96, 3), dtype=torch.uint8), prep)
    assert tuple(x.shape[2:]) == prep.input_shape(64, 96) == (384, 544)  # (64 + 32) x (96 + 40), short side 384
    raw = torch.full((1, 384, 544), -1.0)
    raw[:, 64:-64, 80:-80] = 1.0  # the frame's part: 16/96 and 20/136 of the output are padding on each side
    cropped = crop_padding(raw, prep, 64, 96)
    assert tuple(cropped.shape) == (1, 256, 384) and bool((cropped == 1).all())
