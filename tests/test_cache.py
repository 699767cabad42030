"""Depth cache: hits skip the model (not even loaded), any change of input, model or input size misses, damaged files
are detected and recomputed, cached maps equal fresh ones, frame ranges share frames without mixing them up."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from synth import make_clip, make_tiny_model

from stereoconv.cache import (
    CachedEstimator,
    DepthCache,
    cached_estimator,
    frame_digest,
    input_fingerprint,
    storage_array,
)
from stereoconv.config import DepthConfig
from stereoconv.depth import DepthEstimator, load_estimator, model_fingerprint, upsample_depth, working_shape
from stereoconv.errors import MediaError, ModelError, UsageError
from stereoconv.media import Frame, decode, probe

INPUT_SIZE = 56
F16_STEP = 2.0**-11  # float16 rounds each value by at most this fraction of itself


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("cache-clip") / "clip.mp4", (12, 10))


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny-seed-1"), seed=1)


class Loader:
    """The ``load`` callable of a CachedEstimator: counts loads, and the frames the loaded model predicts."""

    def __init__(self, model: Path, input_size: int = INPUT_SIZE) -> None:
        self.config = DepthConfig(model=str(model), input_size=input_size, device="cpu", batch_size=3)
        self.loads = 0
        self.predicted = 0

    def __call__(self):
        self.loads += 1
        estimator = load_estimator(self.config)
        predict = estimator.predict

        def counting(frames):
            self.predicted += len(frames)
            return predict(frames)

        estimator.predict = counting
        return estimator


def frames_of(path: Path, start: float = 0.0, end: float | None = None) -> list[Frame]:
    return list(decode(probe(path), start, end))


def run(estimator: CachedEstimator, frames: Sequence[Frame]) -> dict[int, np.ndarray]:
    """What the pipeline does: batches of ``batch_size`` frames with their source pts as keys; maps by pts."""
    out: dict[int, np.ndarray] = {}
    with estimator:
        for start in range(0, len(frames), estimator.batch_size):
            batch = frames[start : start + estimator.batch_size]
            depths = estimator([f.rgb for f in batch], [f.pts for f in batch])
            out.update({f.pts: d for f, d in zip(batch, depths, strict=True)})
    return out


def fresh(model: Path, frames: Sequence[Frame], input_size: int = INPUT_SIZE) -> dict[int, tuple[np.ndarray, float]]:
    """Uncached maps and the largest raw value of each frame, by pts."""
    estimator = load_estimator(DepthConfig(model=str(model), input_size=input_size, device="cpu"))
    out = {}
    for f in frames:
        raw = estimator.predict([f.rgb])
        out[f.pts] = (estimator.to_frames(raw, *f.rgb.shape[:2])[0], float(raw.abs().max()))
    return out


def assert_matches_fresh(maps: dict[int, np.ndarray], reference: dict[int, tuple[np.ndarray, float]]) -> None:
    assert maps.keys() <= reference.keys()
    for pts, depth in maps.items():
        expected, raw_max = reference[pts]
        np.testing.assert_allclose(depth, expected, rtol=1e-4, atol=F16_STEP * raw_max + 1e-6, err_msg=f"pts {pts}")


def assert_identical(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for pts in a:
        np.testing.assert_array_equal(a[pts], b[pts], err_msg=f"pts {pts}")


def make(directory: Path, clip_path: Path, model: Path, *, input_size: int = INPUT_SIZE, chunk_frames: int = 8):
    """A CachedEstimator over a DepthCache with small chunks (the 22-frame clip spans three files)."""
    loader = Loader(model, input_size)
    cache = DepthCache(directory, input_fingerprint(clip_path), model_fingerprint(str(model), input_size),
                       chunk_frames=chunk_frames)  # fmt: skip
    return CachedEstimator(loader, cache, batch_size=3), loader


def chunk_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*/*.depth"))


# ------------------------------------------------------------------------------------------------ hits, misses


def test_a_second_run_reads_every_frame_and_never_loads_the_model(tmp_path, clip, tiny_model):
    frames = frames_of(clip.path)
    loader = Loader(tiny_model)
    config = DepthConfig(model=str(tiny_model), input_size=INPUT_SIZE, device="cpu", batch_size=3)
    first = cached_estimator(tmp_path / "cache", clip.path, config, load=loader)
    assert isinstance(first, DepthEstimator) and not first.model_loaded  # fingerprints only, no model yet
    maps1 = run(first, frames)
    assert loader.loads == 1 and loader.predicted == len(frames)
    assert (first.stats.hits, first.stats.misses, first.stats.written) == (0, len(frames), len(frames))

    again = Loader(tiny_model)
    second = cached_estimator(tmp_path / "cache", clip.path, config, load=again)
    maps2 = run(second, frames)
    assert again.loads == 0 and not second.model_loaded
    assert (second.stats.hits, second.stats.misses, second.stats.written) == (len(frames), 0, 0)
    assert "22 of 22 frames read, 0 computed" in second.stats.summary()
    # every map goes through the stored float16 raw map: cached and computed runs are identical
    assert_identical(maps1, maps2)
    assert_matches_fresh(maps2, fresh(tiny_model, frames))
    rows, cols = load_estimator(config).prep.input_shape(*frames[0].rgb.shape[:2])
    for depth, frame in zip(maps2.values(), frames, strict=True):  # on the working grid: the model's, coarser
        assert depth.dtype == np.float32 and depth.shape == working_shape(*frame.rgb.shape[:2], rows, cols)
    assert len(chunk_files(tmp_path / "cache")) == 1  # 22 frames, chunks of 32
    meta = next((tmp_path / "cache").glob("*/meta.json")).read_text()
    assert str(tiny_model) in meta and '"input_size": 56' in meta


def test_a_changed_input_misses(tmp_path, tiny_model):
    path = tmp_path / "input.mp4"
    make_clip(path, (6,), seed=1)
    estimator, loader = make(tmp_path / "cache", path, tiny_model)
    run(estimator, frames_of(path))
    other = make_clip(path, (6,), seed=2)  # same name, same size in frames, other pictures
    estimator, loader = make(tmp_path / "cache", path, tiny_model)
    maps = run(estimator, frames_of(path))
    assert estimator.stats.hits == 0 and loader.predicted == 6
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one folder per input
    assert_matches_fresh(maps, fresh(tiny_model, frames_of(other.path)))


def test_a_changed_model_or_input_size_misses(tmp_path, clip, tiny_model, other_model):
    frames = frames_of(clip.path, end=6 / 24)
    run(make(tmp_path, clip.path, tiny_model)[0], frames)
    for model, size in [(other_model, INPUT_SIZE), (tiny_model, 28)]:
        estimator, loader = make(tmp_path, clip.path, model, input_size=size)
        maps = run(estimator, frames)
        assert estimator.stats.hits == 0 and loader.predicted == len(frames)
        assert_matches_fresh(maps, fresh(model, frames, size))
    estimator, loader = make(tmp_path, clip.path, tiny_model)
    run(estimator, frames)
    assert estimator.stats.hits == len(frames) and loader.loads == 0


def test_model_fingerprint_follows_content_not_place(tmp_path, tiny_model, other_model):
    fp = model_fingerprint(str(tiny_model), 518)
    copy = shutil.copytree(tiny_model, tmp_path / "copy")
    assert model_fingerprint(str(copy), 518) == fp
    assert model_fingerprint(str(tiny_model), 266) != fp
    assert model_fingerprint(str(other_model), 518) != fp
    prep = copy / "preprocessor_config.json"
    prep.write_text(prep.read_text().replace('"resample": 3', '"resample": 2'))
    assert model_fingerprint(str(copy), 518) != fp
    with pytest.raises(ModelError, match="model directory not found"):
        model_fingerprint(str(tmp_path / "missing"), 518)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="cannot load depth model"):
        model_fingerprint(str(tmp_path / "empty"), 518)


def test_model_fingerprint_of_a_hub_model_in_the_hf_cache(tmp_path, tiny_model, monkeypatch):
    """Hub id, cached: found without a network, weights not re-read (their blob name is their sha256), and the
    fingerprint equals that of a plain directory with the same files."""
    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--someone--tiny-depth"
    snapshot = repo / "snapshots" / ("0" * 40)
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for file in tiny_model.iterdir():
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    weights = repo / "blobs" / hashlib.sha256((tiny_model / "model.safetensors").read_bytes()).hexdigest()
    weights.chmod(0o000)  # would fail if read (unless root)
    try:
        assert model_fingerprint("someone/tiny-depth", 518) == model_fingerprint(str(tiny_model), 518)
    finally:
        weights.chmod(0o644)


# ------------------------------------------------------------------------------------------------ damage


def _flip_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])


def _break_header(path: Path) -> None:
    data = path.read_bytes()
    at = data.index(b'"entries":[[') + len(b'"entries":[[')
    path.write_bytes(data[:at] + b"x" + data[at + 1 :])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_flip_payload_byte, _truncate, _break_header, _empty])
def test_a_damaged_chunk_is_detected_recomputed_and_rewritten(tmp_path, clip, tiny_model, damage):
    frames = frames_of(clip.path)
    estimator, _ = make(tmp_path, clip.path, tiny_model)
    maps1 = run(estimator, frames)
    files = chunk_files(tmp_path)
    assert len(files) == 3  # 8 + 8 + 6 frames
    victim = files[1]
    damage(victim)

    estimator, loader = make(tmp_path, clip.path, tiny_model)
    maps2 = run(estimator, frames)
    assert estimator.stats.damaged == 1
    assert loader.loads == 1 and loader.predicted == 8 == estimator.stats.misses == estimator.stats.written
    assert estimator.stats.hits == len(frames) - 8
    assert "1 damaged file(s) discarded" in estimator.stats.summary()
    assert not victim.exists() and len(chunk_files(tmp_path)) == 3
    assert_identical(maps1, maps2)  # recomputed, never the damaged values

    estimator, loader = make(tmp_path, clip.path, tiny_model)
    assert_identical(run(estimator, frames), maps1)
    assert (estimator.stats.hits, estimator.stats.damaged, loader.loads) == (len(frames), 0, 0)


def test_a_chunk_of_another_model_is_refused(tmp_path, clip, tiny_model, other_model):
    frames = frames_of(clip.path, end=5 / 24)
    run(make(tmp_path / "a", clip.path, tiny_model)[0], frames)
    run(make(tmp_path / "b", clip.path, other_model)[0], frames)
    (foreign,) = chunk_files(tmp_path / "a")
    (own,) = chunk_files(tmp_path / "b")
    shutil.copyfile(foreign, own)  # the name of b's file, the content of a's
    estimator, loader = make(tmp_path / "b", clip.path, other_model)
    maps = run(estimator, frames)
    assert estimator.stats.damaged == 1 and estimator.stats.hits == 0 and loader.predicted == len(frames)
    assert_matches_fresh(maps, fresh(other_model, frames))


def test_a_failed_write_does_not_stop_the_run(tmp_path, clip, tiny_model, monkeypatch):
    frames = frames_of(clip.path, end=10 / 24)

    def disk_full(self, path, data):
        raise OSError(28, "No space left on device")

    estimator, _ = make(tmp_path, clip.path, tiny_model, chunk_frames=4)
    monkeypatch.setattr(DepthCache, "_write_atomic", disk_full)
    maps = run(estimator, frames)
    monkeypatch.undo()
    assert estimator.stats.write_errors == 1 and estimator.stats.written == 0  # gives up after the first failure
    assert "No space left on device" in estimator.stats.summary()
    assert_matches_fresh(maps, fresh(tiny_model, frames))
    assert chunk_files(tmp_path) == []


def test_an_unusable_directory_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(UsageError, match="cannot use depth cache directory"):
        DepthCache(tmp_path / "file", "a", "b")


# ------------------------------------------------------------------------------------------------ ranges, keys


def test_frame_ranges_share_overlapping_frames_and_never_mix_them_up(tmp_path, clip, tiny_model):
    head = frames_of(clip.path, end=14 / 24)  # frames 0-13
    tail = frames_of(clip.path, start=8 / 24)  # frames 8-21
    everything = frames_of(clip.path)
    assert [f.index for f in tail][:2] == [0, 1] and tail[0].pts == everything[8].pts  # indices restart, pts do not
    estimator, _ = make(tmp_path, clip.path, tiny_model)
    maps_head = run(estimator, head)
    estimator, loader = make(tmp_path, clip.path, tiny_model)
    maps_tail = run(estimator, tail)
    assert (estimator.stats.hits, estimator.stats.misses, loader.predicted) == (6, 8, 8)

    estimator, loader = make(tmp_path, clip.path, tiny_model)
    maps = run(estimator, everything)
    assert estimator.stats.hits == len(everything) and loader.loads == 0
    assert_identical({p: maps[p] for p in maps_head}, maps_head)
    assert_identical({p: maps[p] for p in maps_tail}, maps_tail)
    assert_matches_fresh(maps, fresh(tiny_model, everything))


def test_a_key_with_other_pixels_is_a_miss_not_a_wrong_hit(tmp_path, clip, tiny_model):
    frames = frames_of(clip.path, end=3 / 24)
    estimator, loader = make(tmp_path, clip.path, tiny_model)
    run(estimator, frames)
    impostor = frames_of(clip.path)[15]  # another shot's frame, presented with frame 0's pts
    with estimator:
        (depth,) = estimator([impostor.rgb], [frames[0].pts])
    assert estimator.stats.misses == len(frames) + 1 and estimator.stats.hits == 0
    assert_matches_fresh({frames[0].pts: depth}, {frames[0].pts: fresh(tiny_model, [impostor])[impostor.pts]})
    # both now live under that pts, each found by its pixels
    estimator, loader = make(tmp_path, clip.path, tiny_model)
    with estimator:
        estimator([frames[0].rgb, impostor.rgb], [frames[0].pts, frames[0].pts])
    assert estimator.stats.hits == 2 and loader.loads == 0


def test_keys_are_required(tmp_path, clip, tiny_model):
    estimator, _ = make(tmp_path, clip.path, tiny_model)
    rgb = [np.zeros((64, 96, 3), np.uint8)]
    with pytest.raises(ValueError, match="needs each frame's key"):
        estimator(rgb)
    with pytest.raises(ValueError, match="1 frames but 2 keys"):
        estimator(rgb, [0, 1])
    assert estimator([], []) == []


# ------------------------------------------------------------------------------------------------ pieces


def test_values_beyond_float16_are_stored_as_float32(tmp_path):
    small = np.linspace(0, 20, 12, dtype=np.float32).reshape(3, 4)
    assert storage_array(small).dtype == np.float16
    np.testing.assert_allclose(storage_array(small), small, rtol=F16_STEP)
    huge = small * 1e5
    with DepthCache(tmp_path, "input", "model") as cache:
        cache.put(0, "d0", small)
        assert cache.put(1, "d1", huge).dtype == np.float32
    cache = DepthCache(tmp_path, "input", "model")
    np.testing.assert_array_equal(cache.get(1, "d1"), huge)
    np.testing.assert_array_equal(cache.get(0, "d0"), small.astype(np.float16))
    assert cache.get(2, "d2") is None and cache.get(0, "other") is None
    assert (cache.stats.hits, cache.stats.misses) == (2, 2)


def test_input_fingerprint_hashes_small_files_whole_and_samples_large_ones(tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(bytes(1000))
    fp = input_fingerprint(small)
    shutil.copyfile(small, tmp_path / "elsewhere.bin")
    assert input_fingerprint(tmp_path / "elsewhere.bin") == fp
    small.write_bytes(bytes(500) + b"\x01" + bytes(499))
    assert input_fingerprint(small) != fp

    size = 100 << 20
    large = tmp_path / "large.bin"
    with open(large, "wb") as fh:
        fh.truncate(size)  # sparse: no 100 MB written
    fp = input_fingerprint(large)

    def poke(offset: int) -> str:
        with open(large, "r+b") as fh:
            fh.seek(offset)
            fh.write(b"\x01")
        changed = input_fingerprint(large)
        with open(large, "r+b") as fh:
            fh.seek(offset)
            fh.write(b"\x00")
        return changed

    middle = (4 << 20) + (size - (9 << 20)) * 8 // 17  # inside the 8th sampled slice
    for offset in (0, size - 1, middle + 100):
        assert poke(offset) != fp
    assert poke((5 << 20) + 10) == fp  # between samples: not seen (the documented limit)
    with pytest.raises(MediaError, match="cannot read"):
        input_fingerprint(tmp_path / "missing.mp4")


def test_frame_digest_tells_frames_apart():
    a = np.zeros((4, 6, 3), np.uint8)
    b = a.copy()
    b[2, 3, 1] = 1
    assert frame_digest(a) != frame_digest(b) and frame_digest(a) == frame_digest(a.copy())
    assert frame_digest(a) != frame_digest(np.zeros((6, 4, 3), np.uint8))


def test_predict_then_to_frames_is_the_estimator_call(tiny_model):
    estimator = load_estimator(DepthConfig(model=str(tiny_model), input_size=INPUT_SIZE, device="cpu"))
    frames = [np.random.default_rng(s).integers(0, 256, (50, 80, 3), dtype=np.uint8) for s in range(2)]
    raw = estimator.predict(frames)
    assert raw.shape == (2, 56, 84) and raw.dtype == torch.float32
    for a, b in zip(estimator(frames), upsample_depth(raw.clone(), 50, 80), strict=True):
        np.testing.assert_array_equal(a, b)
    assert upsample_depth(raw[:, :0, :0].reshape(0, 1, 1), 50, 80) == []
    with pytest.raises(ValueError, match="B, h, w"):
        upsample_depth(raw[0], 50, 80)


def test_frames_of_a_vfr_clip_are_keyed_by_their_own_pts(tmp_path, tiny_model):
    path = make_clip(tmp_path / "vfr.mp4", (7,), vfr=True, fps=Fraction(24)).path
    frames = frames_of(path)
    assert len({f.pts for f in frames}) == len(frames)
    run(make(tmp_path / "cache", path, tiny_model)[0], frames)
    estimator, loader = make(tmp_path / "cache", path, tiny_model)
    run(estimator, frames[3:])
    assert estimator.stats.hits == 4 and loader.loads == 0
