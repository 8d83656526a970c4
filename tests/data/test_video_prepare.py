"""`vljax prepare --from-video-manifest`: frame sampling (vljax/data/video_frames.py) on frame
counts and timestamps alone, and a miniature manifest of generated clips, one frame colour per
frame number, read back in order after mpeg4 and JPEG; broken videos skipped and counted."""

import importlib.util
import io
import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from tests.data.clips import frame_numbers, write_clip
from vljax import cli
from vljax.data import prepare
from vljax.data.video_files import check_video
from vljax.data.video_frames import (
    VideoOptions,
    fps_indices,
    random_segment_indices,
    sample_indices,
    uniform_indices,
)
from vljax.errors import ConfigError

# -- sampling, without video files -------------------------------------------------------------


def test_uniform_takes_segment_centres_in_order_and_pads_short_clips():
    assert uniform_indices(10, 4) == [1, 3, 6, 8]  # centres 1.25, 3.75, 6.25, 8.75
    assert uniform_indices(12, 4) == [1, 4, 7, 10]
    assert uniform_indices(8, 8) == list(range(8))
    assert uniform_indices(100, 1) == [50]
    assert uniform_indices(3, 5) == [0, 1, 2, 2, 2]  # short: every frame, then the last
    assert uniform_indices(1, 3) == [0, 0, 0]


def test_fps_takes_one_frame_per_period_from_the_start():
    stamps = [i / 10 for i in range(10)]  # 10 frames at 10 fps: 0.0 .. 0.9 s
    assert fps_indices(stamps, 4, fps=5) == [0, 2, 4, 6]
    assert fps_indices(stamps, 3, fps=10) == [0, 1, 2]
    assert fps_indices(stamps, 4, fps=2) == [0, 5, 5, 5]  # 1.0 s is past the end: padded
    assert fps_indices(stamps, 4, fps=20) == [0, 0, 1, 1]  # faster than the clip: repeats
    # Times from the first frame's, and the frame on screen at each time (uneven spacing).
    assert fps_indices([2.0, 2.05, 2.3, 2.5, 3.1], 4, fps=2.5) == [0, 2, 3, 3]


def test_random_segment_is_seeded_and_draws_one_frame_per_segment():
    draws = [random_segment_indices(20, 4, np.random.default_rng(s)) for s in range(20)]
    for idx in draws:
        assert [i // 5 for i in idx] == [0, 1, 2, 3]  # segments [0,5) [5,10) [10,15) [15,20)
    assert random_segment_indices(20, 4, np.random.default_rng(3)) == draws[3]
    assert len({tuple(d) for d in draws}) > 10
    assert random_segment_indices(3, 5, np.random.default_rng(0)) == [0, 1, 2, 2, 2]


def test_options_are_checked_with_the_valid_names():
    with pytest.raises(ConfigError, match="uniform | fps | random_segment"):
        sample_indices(VideoOptions(sampling="middle"), [0.0], np.random.default_rng(0))
    with pytest.raises(ConfigError, match="needs --fps"):
        VideoOptions(sampling="fps").check()
    with pytest.raises(ConfigError, match="--fps goes with --sampling fps"):
        VideoOptions(fps=2.0).check()
    with pytest.raises(ConfigError, match="--frames must be a positive"):
        VideoOptions(frames=0).check()


# -- decoding and prepare --------------------------------------------------------------------


def test_random_segment_decode_is_deterministic_per_clip(tmp_path):
    write_clip(tmp_path / "a.mp4", 12, size=16)
    opts = VideoOptions(frames=3, sampling="random_segment", seed=5)
    args = (str(tmp_path / "a.mp4"), "clips.jsonl:1 a.mp4", opts, 10**6)
    frames, reason, _ = check_video(args)
    assert reason == "" and len(frames) == 3
    assert check_video(args)[0] == frames  # same seed and clip: the same frames
    numbers = frame_numbers([np.asarray(Image.open(io.BytesIO(f))) for f in frames])
    assert [i // 4 for i in numbers] == [0, 1, 2]


def test_video_manifest_prepare_stores_sampled_frames_and_skips_broken_videos(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    write_clip(src / "ten.mp4", 10)
    write_clip(src / "twelve.avi", 12)
    write_clip(src / "short.mp4", 3)
    (src / "text.mp4").write_text("not a video")
    good = (src / "ten.mp4").read_bytes()
    (src / "cut.mp4").write_bytes(good[: len(good) // 2])  # mpeg4 in mp4: its index is at the end
    lines = [
        dict(video="ten.mp4", caption={"en": "ten frames", "zh": "十帧"}),
        dict(video="twelve.avi", caption="twelve frames", split="test"),
        dict(video="short.mp4", caption=["three frames", "a short clip"]),
        dict(video="text.mp4", caption="a text file"),
        dict(video="cut.mp4", caption="half a file"),
        dict(video="gone.webm", caption="a missing file"),
        dict(video="still.png", caption="an image"),
        dict(image="ten.mp4", caption="an image manifest's line"),
    ]
    manifest = src / "clips.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    d = tmp_path / "d"
    rc = prepare.cli(
        ["--from-video-manifest", str(manifest), "--name", "clips", "--data-dir", str(d)]
        + ["--frames", "4", "--frame-size", "16", "--no-progress"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    train = tfds.data_source("clips", data_dir=str(d))["train"]
    test = tfds.data_source("clips", data_dir=str(d))["test"]
    by_id = {ex["id"].decode().split()[-1]: ex for ex in [*train, *test]}
    assert sorted(by_id) == ["short.mp4", "ten.mp4", "twelve.avi"]
    assert frame_numbers(by_id["ten.mp4"]["video"]) == [1, 3, 6, 8]
    assert frame_numbers(by_id["twelve.avi"]["video"]) == [1, 4, 7, 10]
    assert frame_numbers(by_id["short.mp4"]["video"]) == [0, 1, 2, 2]  # padded
    assert all(f.shape == (16, 16, 3) for f in by_id["ten.mp4"]["video"])  # 32 px -> 16
    assert [c.decode() for c in by_id["ten.mp4"]["captions"]] == ["ten frames", "十帧"]
    assert [x.decode() for x in by_id["ten.mp4"]["langs"]] == ["en", "zh"]
    assert len(by_id["short.mp4"]["captions"]) == 2
    skipped = [json.loads(x) for x in (d / "clips" / "skipped.jsonl").read_text().splitlines()]
    reasons = {s["source"].split()[-1]: s["reason"] for s in skipped}
    assert reasons == {
        "text.mp4": "not a video",
        "cut.mp4": "no video stream",
        "gone.webm": "missing file",
        "still.png": "not a video",
        "clips.jsonl:8": "missing field",
    }
    assert "skipped 5: " in out and "not a video 2" in out and "skipped.jsonl" in out

    # --sampling fps reads the stream's timestamps: ten frames at 10 fps, one every 0.2 s.
    rc = prepare.cli(
        ["--from-video-manifest", str(manifest), "--name", "clips_fps", "--data-dir", str(d)]
        + ["--frames", "4", "--sampling", "fps", "--fps", "5", "--no-progress"]
    )
    assert rc == 0
    ex = next(e for e in tfds.data_source("clips_fps", data_dir=str(d))["train"])
    assert ex["id"].decode().endswith("ten.mp4")
    assert frame_numbers(ex["video"]) == [0, 2, 4, 6]
    assert ex["video"][0].shape == (32, 32, 3)  # not above --frame-size: kept


def test_video_flags_are_refused_where_they_do_not_apply(tmp_path, monkeypatch, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"video": "a.mp4", "caption": "x"}\n')
    base = ["--name", "v", "--data-dir", str(tmp_path / "d"), "--no-progress"]
    with pytest.raises(ConfigError, match="--frames go with --from-video-manifest"):
        prepare.cli(["--manifest", str(manifest), "--frames", "4", *base])
    with pytest.raises(ConfigError, match="--max-side goes with image inputs"):
        prepare.cli(["--from-video-manifest", str(manifest), "--max-side", "64", *base])
    with pytest.raises(ConfigError, match="uniform | fps | random_segment"):
        prepare.cli(["--from-video-manifest", str(manifest), "--sampling", "middle", *base])

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "av" else find_spec(name, *a)
    )
    assert cli.main(["prepare", "--from-video-manifest", str(manifest), *base]) == 2
    err = capsys.readouterr().err
    assert "needs av (the video extra)" in err and "pip install -e '.[video]'" in err
