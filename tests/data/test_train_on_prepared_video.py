"""A video set written by `vljax prepare --from-video-manifest` trains video_clip and is ranked
by the retrieval eval as a video set: frames decoded from the stored JPEGs and resampled
evenly to model.video.frames."""

import json

import numpy as np
import pytest

from configs.video_clip import get_config
from tests.data.clips import PALETTE, frame_numbers, write_clip
from tests.methods.runs import SMOKE_LOG_EVERY, SMOKE_STEPS, losses, smoke_argv
from vljax import cli
from vljax.data import prepare
from vljax.data.evalsets import load_eval_set
from vljax.data.tfds_source import TfdsSource, resampled
from vljax.data.video_frames import uniform_indices
from vljax.errors import DataError

STORED_FRAMES = 6  # :tiny's clips have 4: every prepared clip is resampled
TRAIN_CLIPS, TEST_CLIPS = 16, 6  # one :tiny batch; a small gallery


def test_resampled_takes_segment_centres_and_repeats_frames_evenly():
    assert resampled(list(range(6)), 4) == [0, 2, 3, 5]  # prepare's uniform centres
    assert resampled(list(range(8)), 4) == [1, 3, 5, 7]
    assert resampled(list(range(4)), 8) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert resampled(list(range(3)), 8) == [0, 0, 0, 1, 1, 2, 2, 2]
    assert resampled(list(range(5)), 5) == list(range(5))
    with pytest.raises(DataError, match="no frames"):
        resampled([], 4)


def prepared_clips(tmp_path) -> str:
    """TRAIN_CLIPS + TEST_CLIPS clips of 10 frames, prepared as STORED_FRAMES frames each;
    clip k starts at colour PALETTE[k % 12], which its caption names. Returns the data dir."""
    src = tmp_path / "src"
    src.mkdir()
    lines = []
    for k in range(TRAIN_CLIPS + TEST_CLIPS):
        write_clip(src / f"{k}.mp4", 10, first=k)
        split = "train" if k < TRAIN_CLIPS else "test"
        lines.append(dict(video=f"{k}.mp4", caption={"en": f"clip {k} from colour {k % 12}"},
                          split=split))  # fmt: skip
    (src / "clips.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    data_dir = str(tmp_path / "d")
    argv = ["--from-video-manifest", str(src / "clips.jsonl"), "--name", "clips"]
    argv += ["--data-dir", data_dir, "--frames", str(STORED_FRAMES), "--no-progress"]
    assert prepare.cli(argv) == 0
    return data_dir


def test_video_clip_trains_and_is_scored_on_a_prepared_video_set(tmp_path):
    data_dir = prepared_clips(tmp_path)
    src = TfdsSource("clips", "train", data_dir)
    assert src.media == "video" and len(src[0]["video"]) == STORED_FRAMES
    assert isinstance(src[0]["video"][0], bytes)  # JPEG, decoded in the pipeline's transform

    # The eval set: each stored clip's frames resampled to :tiny's 4 and sized as images are.
    config = get_config("tiny")
    config.data.data_dir = data_dir
    evals = {"clips": dict(type="retrieval", dataset="tfds:clips:test", lang="en")}
    data = load_eval_set(evals["clips"], config)
    assert "images" not in data and data["videos"].shape == (TEST_CLIPS, 4, 32, 32, 3)
    stored = uniform_indices(10, STORED_FRAMES)  # what prepare kept of the 10 frames
    assert sorted(data["captions"]) == sorted(
        f"clip {k} from colour {k % 12}" for k in range(TRAIN_CLIPS, TRAIN_CLIPS + TEST_CLIPS)
    )
    for clip, caption in zip(data["videos"], data["captions"], strict=True):
        first = int(caption.split()[1])  # the split's order is tfds', its captions say which
        expect = [(first + stored[i]) % len(PALETTE) for i in resampled(range(STORED_FRAMES), 4)]
        assert frame_numbers(clip) == expect

    # The methods' video_clip smoke run's steps (smoke_argv's): the same train-step program,
    # which the session's compile cache then holds for whichever of the two runs second.
    workdir = tmp_path / "run"
    argv = smoke_argv("video_clip", workdir)
    argv += [
        f"--config.checkpoint_every_steps={SMOKE_STEPS}",
        "--config.data.train.dataset=tfds:clips",
        f"--config.data.data_dir={data_dir}",
        f"--config.evals={json.dumps(evals)}",
    ]
    assert cli.main(argv) == 0
    got = losses(workdir)
    assert sorted(got) == list(range(SMOKE_LOG_EVERY, SMOKE_STEPS + 1, SMOKE_LOG_EVERY))
    assert all(np.isfinite(v) for v in got.values())
    results = json.loads((workdir / "eval.json").read_text())
    for d in ("txt2video", "video2txt"):
        for k in (1, 5, 10):
            assert 0 <= results[f"retrieval/clips/{d}_r{k}"] <= 1
        assert 1 <= results[f"retrieval/clips/{d}_medr"] <= TEST_CLIPS
