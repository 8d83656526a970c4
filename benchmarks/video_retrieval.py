"""Text->video retrieval of a trained video_clip run on moving_shapes' retrieval split, by
whole clips and by their middle frame alone (how much the order of the frames answers).

    python benchmarks/video_retrieval.py --workdir runs/video_clip [--n 500]

Prints R@1 / R@5 text->video and video->text, per event kind too (move, change, order), for
the whole clip and for its middle frame embedded as a 1-frame video. Ranks are by clip index:
a clip whose caption another clip shares counts only when it comes first. Not yet an eval
(`retrieval/<name>/txt2video_r1` is the next step of issue 15).
"""

import argparse
import json
import os
import sys

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import vljax  # noqa: E402
from vljax.data.moving_shapes import MovingShapesSource  # noqa: E402
from vljax.data.preprocess import normalize  # noqa: E402


def recall(scores, k):
    """scores [N, N], query i's match is item i -> fraction ranked within the top k."""
    ranks = (scores > np.diag(scores)[:, None]).sum(axis=1)
    return float(np.mean(ranks < k))


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args(argv)
    enc = vljax.load(args.workdir)
    m = enc.model_config
    src = MovingShapesSource(
        "retrieval",
        seed=int(enc.run_config.seed),
        image_size=int(m.image.image_size),
        frames=int(m.video.frames),
    )
    clips = [src[i] for i in range(args.n)]
    video = normalize(np.stack([c["video"] for c in clips]))
    kinds = np.array([c["event"] for c in clips])
    texts = enc.encode_texts([c["captions"]["en"] for c in clips])
    embed = jax.jit(lambda p, v: enc.model.apply({"params": p}, v, method="encode_videos"))
    out = {}
    for name, x in (("clip", video), ("middle_frame", video[:, m.video.frames // 2][:, None])):
        emb = np.concatenate(
            [np.asarray(embed(enc.params, x[i : i + 100])) for i in range(0, len(x), 100)]
        )
        scores = texts @ emb.T  # [text, video]
        out[f"{name}/txt2video_r1"] = recall(scores, 1)
        out[f"{name}/txt2video_r5"] = recall(scores, 5)
        out[f"{name}/video2txt_r1"] = recall(scores.T, 1)
        for kind in ("move", "change", "order"):
            sel = kinds == kind
            out[f"{name}/{kind}/txt2video_r1"] = recall(scores[np.ix_(sel, sel)], 1)
    print(json.dumps({k: round(v, 3) for k, v in out.items()}, indent=1))


if __name__ == "__main__":
    main()
