"""Video-text CLIP on the moving_shapes clips (vljax/methods/video_clip.py, issue 15).

The demo's towers (configs/demo.py) embed each frame; `model.video.temporal` pools them over
time: `mean` (default) or `transformer` (`--config.model.video.temporal=transformer`), or
`space_time` attends across frames inside the ViT (configs/frozen_in_time.py), or `early`
stacks the frames on the channel axis for one ViT pass per clip; X-Pool's text-conditioned
pooling is configs/xpool.py. Args: `demo` (48 px, 8 frames, 300 steps: 452 s with mean
pooling on the 2-core CPU; figures in docs/methods.md), `demo_temporal` (`demo` with the
temporal transformer and the `time_order` term: each caption against its clip played
backwards), `demo_early` (`demo` with early fusion), `demo_early_128` (early fusion at batch
128 for 400 steps, `early_fusion`), `demo_negnce` and `demo_tpm_cl` (`demo` with NegNCE's or
TPM-CL's hard-negative terms, as configs/negnce.py and configs/tpm_cl.py set them on
images), `tiny` (a smoke run: 32 px, 4 frames, tiny towers). Eval:
text-video retrieval on moving_shapes' held-out clips (`moving_shapes:retrieval`, English
captions), `retrieval/moving_shapes/txt2video_r1`, `_r5`, `_r10`, `video2txt_r1`, ...,
`txt2video_medr`, `video2txt_medr` (docs/evals.md); the whole split (1,000 clips) for the
`demo` args, its first TINY_EVAL_CLIPS for `tiny`.
"""

import ml_collections

from configs import demo
from configs.negnce import use_negnce
from configs.tpm_cl import add_tpm_cl
from vljax.methods import get_method

RETRIEVAL_EVAL = dict(type="retrieval", dataset="moving_shapes:retrieval", key="moving_shapes")
TINY_EVAL_CLIPS = 200  # enough for R@10 to mean something, few enough for the smoke test
ARGS = (
    "demo",
    "demo_temporal",
    "demo_early",
    "demo_early_128",
    "demo_negnce",
    "demo_tpm_cl",
    "tiny",
)


def get_config(arg=None):
    if arg not in ARGS:
        raise ValueError(f"configs/video_clip.py:{arg}: expected {', '.join(ARGS[:-1])} or tiny")
    c = demo.get_config()
    c.method = "video_clip"
    c.data.train.dataset = "moving_shapes"
    c.data.train.lang = "en"
    c.evals = ml_collections.ConfigDict(dict(moving_shapes_retrieval=RETRIEVAL_EVAL))
    # The longest English moving_shapes caption ("a small yellow triangle appears, then a
    # big green square") needs more positions than the image captions.
    c.model.text.max_len = 24
    c.model.video.update(dict(heads=4, mlp_dim=256, depth=1))
    if arg == "tiny":
        demo.tiny(c)
        c.model.video.update(frames=4, heads=2, mlp_dim=64)
        c.model.text.max_len = 24
        c.batch_size = 16
        c.evals = ml_collections.ConfigDict(
            dict(moving_shapes_retrieval=dict(RETRIEVAL_EVAL, size=TINY_EVAL_CLIPS))
        )
        return c
    c.model.image.image_size = 48
    c.model.video.frames = 8
    c.batch_size = 32
    c.total_steps = 300
    c.checkpoint_every_steps = 150
    if arg == "demo_temporal":
        temporal(c)
    if arg == "demo_early":
        c.model.video.temporal = "early"
    if arg == "demo_early_128":
        early_fusion(c)
    if arg == "demo_negnce":
        use_negnce(c)
    if arg == "demo_tpm_cl":
        add_tpm_cl(c)
    return c


def early_fusion(c):
    """Early fusion (`model.video.temporal = "early"`): the clip's frames stacked on the
    channel axis, one ViT pass per clip instead of one per frame, so a step of 32 clips costs
    about what 4 frames' did. The time that frees buys batch 128 and 400 steps (the image demo's),
    in about the wall time of `demo`'s 32 x 300 with a ViT pass per frame."""
    c.model.video.temporal = "early"
    c.batch_size = 128
    c.total_steps = 400
    c.checkpoint_every_steps = 200
    return c


def temporal(c):
    """The temporal transformer over the frame embeddings, with each caption also asked to
    prefer its clip to the clip played backwards (term `time_order`): without that term the
    transformer did no better than mean pooling on moving_shapes (docs/methods.md)."""
    c.model.video.temporal = "transformer"
    terms = dict(c.loss.terms) or dict(get_method(c.method).default_terms)
    c.loss.terms = ml_collections.ConfigDict({**terms, "time_order": 1.0})
    return c
