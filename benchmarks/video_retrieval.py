"""Text-video retrieval of a trained video run (video_clip, xpool, snp_s3, ...) by whole
clips and by their middle frame alone (how much the order of the frames answers), overall and
per event kind. An X-Pool run scores with its params (the evals' `Encoder.similarity`).

    python benchmarks/video_retrieval.py --workdir runs/video_clip [--n 500]

Reads the first N clips of the retrieval eval's set (configs/video_clip.py's
`moving_shapes:retrieval`, the run's caption language) and ranks them with the eval's code
(vljax/evals/metrics.py): the whole-clip keys are what `retrieval/moving_shapes/...` reports
for an eval of that size. Prints txt2video / video2txt R@1, R@5, R@10 and median ranks for the
whole clip and for its middle frame embedded as a 1-frame video, and txt2video R@1 within the
clips of each event kind (move, change, order), which the eval does not report. A clip whose
caption another clip shares counts only when it comes first.
"""

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import vljax  # noqa: E402
from configs.video_clip import RETRIEVAL_EVAL  # noqa: E402
from vljax.data.evalsets import load_eval_set  # noqa: E402
from vljax.data.moving_shapes import EVENTS  # noqa: E402
from vljax.evals import metrics  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args(argv)
    enc = vljax.load(args.workdir)
    data = load_eval_set({**RETRIEVAL_EVAL, "size": args.n}, enc.run_config)
    videos, events = data["videos"], np.array(data["events"])
    texts = enc.encode_texts(data["captions"])
    middle = videos[:, videos.shape[1] // 2][:, None]
    out = {}
    for name, clips in (("clip", videos), ("middle_frame", middle)):
        emb = enc.encode_videos(clips)
        scores = metrics.retrieval_metrics(emb, texts, similarity=enc.similarity, gallery="video")
        out.update({f"{name}/{m}": v for m, v in scores.items()})
        for kind in EVENTS:
            rows = np.flatnonzero(events == kind)
            within = metrics.retrieval_metrics(
                emb[rows], texts[rows], similarity=enc.similarity, ks=(1,), gallery="video"
            )
            out[f"{name}/{kind}/txt2video_r1"] = within["txt2video_r1"]
    print(json.dumps({k: round(v, 3) for k, v in out.items()}, indent=1))


if __name__ == "__main__":
    main()
