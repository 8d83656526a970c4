"""Text-video retrieval as an eval: the video keys against a ranking computed by hand, and a
retrieval entry on `moving_shapes:retrieval` writing them (per language too) from its clips."""

import dataclasses

import ml_collections
import numpy as np
import pytest
from test_multilingual_retrieval import HashEncoder

from vljax.config import load_config
from vljax.errors import ConfigError
from vljax.evals import metrics
from vljax.evals.run import run_evals
from vljax.inference import Encoder
from vljax.methods import get_method

# Scores [3 videos, 5 captions]: captions 0, 1 describe video 0, caption 2 video 1, captions 3,
# 4 video 2. Ties: caption 0 scores 0.9 with videos 0 and 1, caption 2 0.4 with videos 1 and
# 2, and video 1 scores 0.4 with captions 1 and 2.
SCORES = np.array(
    [
        [0.9, 0.2, 0.5, 0.1, 0.3],
        [0.9, 0.4, 0.4, 0.1, 0.3],
        [0.1, 0.7, 0.4, 0.8, 0.2],
    ],
    np.float32,
)
TEXT_VIDEO = np.array([0, 0, 1, 2, 2])
# By hand, ties in the query's favour (the rank is how many wrong items score strictly higher):
# text -> video: caption 0 ties video 1 (rank 0); caption 1 is beaten by videos 1, 2 (2);
# caption 2 by video 0 only, video 2 tied (1); caption 3 first (0); caption 4 by videos 0, 1 (2).
TXT2VIDEO_RANKS = [0, 2, 1, 0, 2]
# video -> text, the best of its own captions: video 0's caption 0 first (0); video 1's caption
# 2 beaten by caption 0 only, caption 1 tied (1); video 2's caption 3 first (0).
VIDEO2TXT_RANKS = [0, 1, 0]


def test_video_keys_match_a_ranking_computed_by_hand():
    videos, texts = np.eye(3, dtype=np.float32), SCORES.T  # videos @ texts.T == SCORES
    got = metrics.retrieval_metrics(videos, texts, TEXT_VIDEO, gallery="video")
    assert got == {
        "txt2video_r1": 2 / 5,  # ranks 0, 0 of 5
        "txt2video_r5": 1.0,
        "txt2video_r10": 1.0,
        "video2txt_r1": 2 / 3,
        "video2txt_r5": 1.0,
        "video2txt_r10": 1.0,
        "txt2video_medr": 2.0,  # sorted ranks 0, 0, 1, 2, 2: median 1, 1-based 2
        "video2txt_medr": 1.0,  # 0, 0, 1: median 0
    }
    ranks = metrics.retrieval_ranks(videos, texts, TEXT_VIDEO)
    assert ranks["txt2img"].tolist() == TXT2VIDEO_RANKS
    assert ranks["img2txt"].tolist() == VIDEO2TXT_RANKS
    recall = metrics.retrieval_recall(videos, texts, ks=(1, 2), text_image=TEXT_VIDEO)
    assert recall == {"txt2img_r1": 2 / 5, "txt2img_r2": 3 / 5, "img2txt_r1": 2 / 3,
                      "img2txt_r2": 1.0}  # fmt: skip


@dataclasses.dataclass
class HashVideoEncoder(HashEncoder):
    """HashEncoder's clips: the mean of their frames' embeddings."""

    method = get_method("video_clip")

    def encode_videos(self, videos):
        videos = np.asarray(videos)
        frames = self.encode_images(videos.reshape(-1, *videos.shape[2:]))
        return frames.reshape(*videos.shape[:2], -1).mean(axis=1)


def test_a_video_set_writes_the_video_keys_per_language_too():
    config = load_config("configs/video_clip.py:tiny")
    entry = dict(type="retrieval", dataset="moving_shapes:retrieval", size=12, langs=["en", "zh"])
    config.evals = ml_collections.ConfigDict({"ms": entry})
    results = run_evals(config, HashVideoEncoder(), step=0)
    directions = ("txt2video", "video2txt")
    plain = [f"{d}_r{k}" for d in directions for k in (1, 5, 10)] + [
        f"{d}_medr" for d in directions
    ]
    for metric in plain:
        assert results[f"retrieval/ms/{metric}"] == results[f"retrieval/ms/en/{metric}"]
        assert f"retrieval/ms/zh/{metric}" in results
    for metric in metrics.recall_names("video"):
        assert f"retrieval/ms/{metric}_mean" in results
    assert not [k for k in results if "img" in k]
    assert 0 <= results["retrieval/ms/mrv"]


def test_a_video_set_needs_a_video_method_and_a_retrieval_eval():
    config = load_config("configs/video_clip.py:tiny")
    entry = dict(type="zeroshot", dataset="moving_shapes:retrieval", size=4)
    config.evals = ml_collections.ConfigDict({"ms": entry})
    with pytest.raises(ConfigError, match="only a retrieval eval"):
        run_evals(config, HashVideoEncoder(), step=0)
    image_method = Encoder(get_method("clip"), None, config.model, None, None)
    with pytest.raises(ConfigError, match="embeds no videos"):
        image_method.encode_videos(np.zeros((1, 4, 32, 32, 3), np.uint8))
