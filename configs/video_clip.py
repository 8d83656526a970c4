"""Video-text CLIP on the moving_shapes clips (vljax/methods/video_clip.py, issue 15).

The demo's towers (configs/demo.py) embed each frame; `model.video.temporal` pools them over
time: `mean` (default) or `transformer`
(`--config.model.video.temporal=transformer`). Args: `demo` (48 px, 8 frames, 300 steps:
452 s with mean pooling on the 2-core CPU; figures in docs/methods.md), `tiny` (a smoke run:
32 px, 4 frames, tiny towers). No evals yet: text-video retrieval is scored by
benchmarks/video_retrieval.py until it is an eval (the next step of issue 15).
"""

import ml_collections

from configs import demo


def get_config(arg=None):
    if arg not in ("demo", "tiny"):
        raise ValueError(f"configs/video_clip.py:{arg}: expected demo or tiny")
    c = demo.get_config()
    c.method = "video_clip"
    c.data.train.dataset = "moving_shapes"
    c.data.train.lang = "en"
    c.evals = ml_collections.ConfigDict()
    # The longest English moving_shapes caption ("a small yellow triangle appears, then a
    # big green square") needs more positions than the image captions.
    c.model.text.max_len = 24
    c.model.video.update(dict(heads=4, mlp_dim=256, depth=1))
    if arg == "tiny":
        demo.tiny(c)
        # A patch stem compiles and runs faster than the demo's conv stem on 64 frames a step.
        c.model.image.update(stem="patch", patch_size=8)
        c.model.video.update(frames=4, heads=2, mlp_dim=64)
        c.model.text.max_len = 24
        c.batch_size = 16
        return c
    c.model.image.image_size = 48
    c.model.video.frames = 8
    c.batch_size = 32
    c.total_steps = 300
    c.checkpoint_every_steps = 150
    return c
