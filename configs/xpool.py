"""X-Pool (text-conditioned frame pooling, arXiv 2203.15086; vljax/methods/xpool.py, issue 15)
on the moving_shapes clips: configs/video_clip.py's recipe (towers, data, eval, `tiny` and
`demo` args) with method xpool and `model.video.temporal = "xpool"`, one attention head as in
the paper. Its similarity pools each clip per text, so training scores the batch's [B, B]
pairs (term pair_contrastive, sharded and tiled) and the eval scores every text-clip pair
with the params (figures in docs/methods.md)."""

from configs import video_clip


def get_config(arg=None):
    c = video_clip.get_config(arg)
    c.method = "xpool"
    c.model.video.update(temporal="xpool", heads=1)
    return c
