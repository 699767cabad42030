"""The command line: bad input gives one clear line, the right exit code and no output; good input converts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from synth import make_clip, write_video

from stereoconv.cli import main

TINY = ["--set", "depth.input_size=56", "-q"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.splitlines() if line.strip()]


def assert_one_line_error(lines: list[str], *fragments: str) -> None:
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert lines[0].startswith("stereoconv: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_nothing_written(directory: Path, keep: set[str]) -> None:
    assert {p.name for p in directory.iterdir()} == keep, "output or temporary files left behind"


def make_audio_only(path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "stereo"
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "audio-only", "truncated-mp4", "truncated-mkv-strict",
                                  "directory"])  # fmt: skip
def test_bad_input_gives_one_line_exit_3_and_no_output(kind, tmp_path, tiny_model, capsys):
    expected = {
        "missing": "input not found",
        "empty": "input is empty",
        "text": "cannot read",
        "audio-only": "has no video stream",
        "truncated-mp4": "cannot read",
        "truncated-mkv-strict": "truncated or damaged",
        "directory": "is a directory",
    }[kind]
    source = tmp_path / {"truncated-mkv-strict": "in.mkv", "audio-only": "in.m4a"}.get(kind, "in.mp4")
    if kind == "empty":
        source.touch()
    elif kind == "text":
        source.write_text("this is not a video\n" * 100)
    elif kind == "audio-only":
        make_audio_only(source)
    elif kind.startswith("truncated"):
        make_clip(source, (30, 30), audio=True)
        data = source.read_bytes()
        source.write_bytes(data[: len(data) // 2])
    elif kind == "directory":
        source.mkdir()
    out = tmp_path / "out.mp4"
    keep = {p.name for p in tmp_path.iterdir()}

    strict = ["--strict"] if kind.endswith("-strict") else []
    code, _, err = run_cli(capsys, "convert", str(source), str(out), "--model", str(tiny_model), *TINY, *strict)
    assert code == 3
    assert_one_line_error(err, expected)
    assert_nothing_written(tmp_path, keep)


def test_truncated_input_converts_what_decodes_and_exits_5(tmp_path, tiny_model, capsys):
    source = tmp_path / "in.mkv"
    make_clip(source, (30, 30), audio=True)
    data = source.read_bytes()
    source.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mp4"

    code, _, err = run_cli(capsys, "convert", str(source), str(out), "--model", str(tiny_model), *TINY)
    assert code == 5, err
    assert err[-1].startswith("stereoconv: completed with losses: about "), err
    warnings = [line for line in err if line.startswith("stereoconv: warning: lost about ")]
    assert len(warnings) == 1, err
    lost = int(warnings[0].split("lost about ")[1].split()[0])
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert 0 < frames < 60
    assert abs(frames + lost - 60) <= 2, (frames, lost)


def test_missing_output_directory_is_a_usage_error(two_shot_clip, tmp_path, tiny_model, capsys):
    out = tmp_path / "no" / "such" / "dir" / "out.mp4"
    code, _, err = run_cli(capsys, "convert", str(two_shot_clip.path), str(out), "--model", str(tiny_model), *TINY)
    assert code == 2
    assert_one_line_error(err, "output directory does not exist")
    assert not out.parent.exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into read-only directories")
def test_unwritable_output_directory_is_a_usage_error(two_shot_clip, tmp_path, tiny_model, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, _, err = run_cli(
            capsys, "convert", str(two_shot_clip.path), str(locked / "out.mp4"), "--model", str(tiny_model), *TINY
        )
    finally:
        locked.chmod(0o755)
    assert code == 2
    assert_one_line_error(err, "not writable")
    assert list(locked.iterdir()) == []


def test_unwritable_output_directory_as_root(two_shot_clip, tmp_path, tiny_model, capsys, monkeypatch):
    """Root writes anywhere, so deny the permission check itself; the refusal must come before any work."""
    import stereoconv.encode as encode

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(encode.os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    code, _, err = run_cli(
        capsys, "convert", str(two_shot_clip.path), str(locked / "out.mp4"), "--model", str(tiny_model), *TINY
    )
    assert code == 2
    assert_one_line_error(err, "output directory is not writable")
    assert list(locked.iterdir()) == []


def test_output_equal_to_input_is_refused(two_shot_clip, tmp_path, tiny_model, capsys):
    code, _, err = run_cli(capsys, "convert", str(two_shot_clip.path), str(two_shot_clip.path),
                           "--model", str(tiny_model), *TINY)  # fmt: skip
    assert code == 2
    assert_one_line_error(err, "overwrite the input")


def test_missing_model_directory_exits_4(two_shot_clip, tmp_path, capsys):
    code, _, err = run_cli(capsys, "convert", str(two_shot_clip.path), str(tmp_path / "o.mp4"),
                           "--model", str(tmp_path / "no-model"), *TINY)  # fmt: skip
    assert code == 4
    assert_one_line_error(err, "model directory not found")
    assert list(tmp_path.iterdir()) == []


def test_directory_that_is_not_a_model_exits_4(two_shot_clip, tmp_path, capsys):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    code, _, err = run_cli(capsys, "convert", str(two_shot_clip.path), str(tmp_path / "o.mp4"),
                           "--model", str(empty), *TINY)  # fmt: skip
    assert code == 4
    assert_one_line_error(err, "cannot load depth model")


def test_offline_hub_model_fails_in_one_line_telling_to_pass_a_directory(two_shot_clip, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run(
        [sys.executable, "-m", "stereoconv", "convert", str(two_shot_clip.path), str(tmp_path / "o.mp4"), "-q"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 4
    assert_one_line_error(lines, "depth-anything/Depth-Anything-V2-Small-hf", "--model DIR")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["--set", "stereo.max_negative_parallax=50"],
            "stereo.max_negative_parallax = 50.0 is out of range: allowed 0.0..10.0 % of screen width",
        ),
        (["--set", "stereo.nope=1"], "unknown setting stereo.nope"),
        (["--set", "depth.batch_size=two"], "depth.batch_size = 'two' is not a int"),
        (["--preset", "western"], "unknown preset 'western'"),
        (["--start", "1:99"], "is not a time"),
        (["--start", "2", "--end", "1"], "must be after media.start"),
        (["--config", "/no/such/file.toml"], "cannot read config file"),
    ],
)
def test_bad_settings_exit_2_naming_the_key(args, fragment, two_shot_clip, tmp_path, capsys):
    code, _, err = run_cli(capsys, "convert", str(two_shot_clip.path), str(tmp_path / "o.mp4"), *args)
    assert code == 2
    assert_one_line_error(err, fragment)
    assert list(tmp_path.iterdir()) == []


def test_convert_with_tiny_model_via_cli(two_shot_clip, tiny_model, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, _, err = run_cli(capsys, "convert", str(two_shot_clip.path), str(out), "--model", str(tiny_model),
                           "--format", "full-tb", "--end", "00:00:00.500", *TINY)  # fmt: skip
    assert code == 0, err
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (96, 128)
        assert sum(1 for _ in container.decode(stream)) == 12


def test_scenes_json(two_shot_clip, capsys):
    code, out, _ = run_cli(capsys, "scenes", str(two_shot_clip.path), "--json")
    assert code == 0
    listing = json.loads(out)
    shots = listing.pop("shots")
    assert listing == {"cuts": two_shot_clip.cuts, "frames": len(two_shot_clip.frames), "fps": 24.0}
    assert [(s["index"], s["first_frame"], s["frames"]) for s in shots] == [(0, 0, 12), (1, 12, 10)]
    assert shots[1]["start"] == pytest.approx(12 / 24) and shots[0]["end"] == shots[1]["start"]


def test_scenes_on_bad_input_exits_3(tmp_path, capsys):
    code, _, err = run_cli(capsys, "scenes", str(tmp_path / "missing.mp4"), "--json")
    assert code == 3
    assert_one_line_error(err, "input not found")


def test_presets_list_and_show(capsys):
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert {"film", "documentary", "action", "animation"} <= set(names)
    code, out, _ = run_cli(capsys, "presets", "show", "action", "--set", "stereo.max_positive_parallax=4")
    assert code == 0
    assert "max_positive_parallax = 4.0" in out and "[temporal]" in out


def test_interrupted_convert_exits_130_without_output(two_shot_clip, tmp_path, tiny_model, capsys, monkeypatch):
    import stereoconv.single_pass as single_pass

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # Ctrl-C arrives in the main thread, which encodes while the other stages run in theirs.
    monkeypatch.setattr(single_pass.VideoWriter, "write", interrupted)
    out = tmp_path / "out.mp4"
    code, _, err = run_cli(capsys, "convert", str(two_shot_clip.path), str(out), "--model", str(tiny_model), *TINY)
    assert code == 130
    assert err == ["stereoconv: interrupted; no output was written"]
    assert list(tmp_path.iterdir()) == []


def test_write_video_helper_really_makes_readable_files(tmp_path):
    # Guard for the fixtures above: a file the tests call valid must decode.
    frames = [np.full((16, 16, 3), 100, np.uint8)] * 3
    write_video(tmp_path / "ok.mp4", frames)
    with av.open(str(tmp_path / "ok.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3


def test_sigterm_leaves_no_file_and_exits_143(tmp_path, tiny_model):
    clip = make_clip(tmp_path / "long.mp4", (60, 60), height=240, width=320)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stereoconv", "convert", str(clip.path), str(out_dir / "out.mp4"),
         "--model", str(tiny_model), "-q"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(out_dir.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # wait until the partial output exists: the kill lands mid-conversion
    if proc.poll() is not None:
        pytest.skip("the conversion finished before it could be stopped")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "stereoconv: terminated; no output was written"
    assert list(out_dir.iterdir()) == []


def test_preview_and_report_from_the_command_line(two_shot_clip, tiny_model, tmp_path, capsys):
    png = tmp_path / "frame.png"
    code, _, err = run_cli(capsys, "preview", str(two_shot_clip.path), "--at", "0.6", "--out", str(png),
                           "--layout", "grid", "--model", str(tiny_model), "--set", "depth.input_size=56")  # fmt: skip
    assert code == 0, err
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] == 2 * (14 + 64)  # 2x2 grid of 96x64 tiles, each under a label

    report = tmp_path / "report.json"
    code, _, err = run_cli(capsys, "convert", str(two_shot_clip.path), str(tmp_path / "out.mp4"), "--report",
                           str(report), "--model", str(tiny_model), *TINY)  # fmt: skip
    assert code == 0, err
    shots = json.loads(report.read_text())["shots"]
    assert [s["first_frame"] for s in shots] == [0, *two_shot_clip.cuts]

    code, _, err = run_cli(capsys, "preview", str(two_shot_clip.path), "--at", "9", "--out", str(tmp_path / "x.png"),
                           "--model", str(tiny_model))  # fmt: skip
    assert code == 2
    assert_one_line_error(err, "beyond the end")
    assert not (tmp_path / "x.png").exists()


def test_unsupported_output_container_is_refused_before_any_work(two_shot_clip, tmp_path, capsys):
    code, _, err = run_cli(capsys, "convert", str(two_shot_clip.path), str(tmp_path / "out.avi"), "--model",
                           str(tmp_path / "no-model"))  # fmt: skip
    assert code == 2
    assert_one_line_error(err, "unsupported output container '.avi'", ".mp4, .mkv or .mov")
    assert list(tmp_path.iterdir()) == []


def test_mkv_video_track_is_default_and_cuts_are_counted_in_words(two_shot_clip, tiny_model, tmp_path, capsys):
    out = tmp_path / "out.mkv"
    code, _, err = run_cli(capsys, "convert", str(two_shot_clip.path), str(out), "--model", str(tiny_model),
                           "--set", "depth.input_size=56")  # fmt: skip
    assert code == 0, err
    assert f"{len(two_shot_clip.frames)} frames, 1 cut, " in err[-1]
    with av.open(str(out)) as container:
        assert container.streams.video[0].disposition & av.stream.Disposition.default


def test_convert_progress_json_lines(two_shot_clip, tiny_model, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, stdout, err = run_cli(capsys, "convert", str(two_shot_clip.path), str(out), "--model", str(tiny_model),
                                "--set", "depth.input_size=56", "--progress", "json",
                                "--progress-every", "5")  # fmt: skip
    assert code == 0, err
    events = [json.loads(line) for line in stdout.splitlines()]
    frames = len(two_shot_clip.frames)
    assert [e["event"] for e in events] == ["start", *["progress"] * (frames // 5), "finish"]
    assert all(e.keys() >= {"chunk", "frames_done", "frames_total", "fps"} for e in events)
    assert [e["frames_done"] for e in events[1:-1]] == list(range(5, frames + 1, 5))
    assert events[0]["frames_total"] == frames and events[0]["output"] == str(out)
    assert events[-1]["frames_done"] == events[-1]["frames"] == frames and events[-1]["output"] == str(out)
