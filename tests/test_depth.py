"""Depth stage: preprocessing from the model's config, the transformers backend, model loading errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synth import REAL_MODEL_CONFIG

from stereoconv.config import DepthConfig
from stereoconv.depth import (
    DepthEstimator,
    Preprocessing,
    auto_batch_size,
    load_estimator,
    preprocess,
    select_device,
)
from stereoconv.errors import ModelError


def test_input_shape_keeps_aspect_and_rounds_to_the_patch_multiple():
    prep = Preprocessing(input_size=518, multiple=14)
    assert prep.input_shape(720, 1280) == (518, 924)
    assert prep.input_shape(1280, 544) == (1218, 518)
    h, w = prep.input_shape(576, 704)
    assert h == 518 and w % 14 == 0 and abs(w / h - 704 / 576) < 0.02
    assert Preprocessing(input_size=518, keep_aspect_ratio=False).input_shape(720, 1280) == (518, 518)
    assert Preprocessing(input_size=500, multiple=14).input_shape(500, 500) == (504, 504)


def test_preprocessing_is_read_from_the_real_model_config():
    import json

    path = REAL_MODEL_CONFIG / "preprocessor_config.json"
    if not path.exists():
        pytest.skip("shared model config not available")
    prep = Preprocessing.from_processor_config(json.loads(path.read_text()))
    assert prep == Preprocessing(input_size=518, keep_aspect_ratio=True, multiple=14, resample="bicubic")
    assert Preprocessing.from_processor_config(json.loads(path.read_text()), input_size=266).input_size == 266


def test_preprocess_normalizes_with_mean_and_std():
    prep = Preprocessing(input_size=28)
    mean_colour = torch.tensor([round(m * 255) for m in prep.mean], dtype=torch.uint8)
    frames = mean_colour.view(1, 1, 1, 3).expand(2, 40, 60, 3).contiguous()
    x = preprocess(frames, prep)
    assert x.shape == (2, 3, 28, 42) and x.dtype == torch.float32
    assert x.abs().max() < 0.02  # the mean colour maps to ~0
    white = preprocess(torch.full((1, 28, 28, 3), 255, dtype=torch.uint8), prep)
    expected = (1 - torch.tensor(prep.mean)) / torch.tensor(prep.std)
    torch.testing.assert_close(white[0, :, 5, 5], expected)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(torch.zeros(1, 3, 28, 28), prep)


def test_tiny_model_loads_from_a_local_directory_and_returns_frame_sized_maps(tiny_model):
    estimator = load_estimator(DepthConfig(model=str(tiny_model), input_size=56, batch_size=3, device="cpu"))
    assert isinstance(estimator, DepthEstimator)
    assert estimator.prep.input_size == 56 and estimator.batch_size == 3
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (50, 80, 3), dtype=np.uint8) for _ in range(3)]
    depths = estimator(frames)
    assert len(depths) == 3
    for d in depths:
        assert d.shape == (50, 80) and d.dtype == np.float32 and np.isfinite(d).all()
    # batching must not change results: one frame at a time gives the same maps
    one_by_one = [estimator([f])[0] for f in frames]
    for a, b in zip(depths, one_by_one, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert estimator([]) == []


def test_metric_models_are_inverted_so_larger_is_nearer(tiny_model):
    estimator = load_estimator(DepthConfig(model=str(tiny_model), input_size=28, device="cpu"))
    frame = [np.full((28, 28, 3), 128, np.uint8)]
    relative = estimator(frame)[0]
    estimator.metric = True
    inverted = estimator(frame)[0]
    np.testing.assert_allclose(inverted, 1.0 / np.maximum(relative, 1e-3), rtol=1e-2)


def test_model_loading_errors_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="model directory not found"):
        load_estimator(DepthConfig(model=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="cannot load depth model"):
        load_estimator(DepthConfig(model=str(tmp_path / "empty")))


def test_device_selection():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            select_device("cuda")


def test_fp16_autocast_only_on_cuda(tiny_model):
    estimator = load_estimator(DepthConfig(model=str(tiny_model), input_size=28, device="cpu", fp16=True))
    assert estimator.fp16 is False  # CPU: full precision whatever the setting


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_matches_cpu(tiny_model):
    frames = [np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(4)]
    cpu = load_estimator(DepthConfig(model=str(tiny_model), input_size=56, device="cpu"))(frames)
    gpu = load_estimator(DepthConfig(model=str(tiny_model), input_size=56, device="cuda", fp16=True))(frames)
    for a, b in zip(cpu, gpu, strict=True):
        np.testing.assert_allclose(a, b, rtol=0.05, atol=0.05 * np.abs(a).max())


def test_compile_setting_compiles_the_model(tiny_model, monkeypatch):
    compiled = []

    def fake_compile(model):
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    load_estimator(DepthConfig(model=str(tiny_model), input_size=28, device="cpu"))
    assert compiled == []
    estimator = load_estimator(DepthConfig(model=str(tiny_model), input_size=28, device="cpu", compile=True))
    assert compiled == [estimator.model]


def test_batch_size_follows_the_device(monkeypatch):
    assert auto_batch_size(torch.device("cpu")) == 4
    gib = 1 << 30

    class Properties:
        total_memory = 0

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Properties)
    cuda = torch.device("cuda")
    for memory, frames in ((141 * gib, 16), (24 * gib, 16), (8 * gib, 6), (4 * gib, 3), (1 * gib, 1)):
        Properties.total_memory = memory
        assert auto_batch_size(cuda) == frames, memory
    Properties.total_memory = 24 * gib
    assert auto_batch_size(cuda, (1036, 1848)) == 5  # four times the pixels: a quarter of the frames


def test_a_batch_the_device_cannot_hold_is_split_and_the_next_ones_are_smaller(tiny_model):
    estimator = load_estimator(DepthConfig(model=str(tiny_model), input_size=56, batch_size=0, device="cpu"))
    assert estimator.batch_size == 4  # sized to the device: the CPU's
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (50, 80, 3), dtype=np.uint8) for _ in range(5)]
    want = estimator.predict(frames)
    model, calls = estimator.model, []

    def forward(pixel_values):
        calls.append(len(pixel_values))
        if len(pixel_values) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return model(pixel_values=pixel_values)

    estimator.model = forward
    got = estimator.predict(frames)
    torch.testing.assert_close(got, want)
    assert calls == [5, 3, 2, 1, 2] and estimator.batch_size == 2
    estimator.model = lambda pixel_values: (_ for _ in ()).throw(torch.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(ModelError, match=r"ran out of cpu memory on one 56x84 input: set a smaller depth\.input_size"):
        estimator.predict(frames[:1])  # one frame that does not fit: nothing left to split
