"""Frozen in Time's divided space-time attention (arXiv 2104.00650; issue 15) on the
moving_shapes clips: configs/video_clip.py's recipe (method video_clip, its towers, data,
eval, `tiny` and `demo` args) with `model.video.temporal = "space_time"`: every ViT block
attends over time at each patch position, then over space within the frame; the temporal
parts start at zero, so image weights compute the image ViT per frame (figures in
docs/methods.md)."""

from configs import video_clip


def get_config(arg=None):
    c = video_clip.get_config(arg)
    c.model.video.temporal = "space_time"
    return c
