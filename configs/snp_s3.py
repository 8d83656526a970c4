"""SNP-S3 (arXiv 2401.17773) on the moving_shapes clips (vljax/methods/snp_s3.py, issue 15).

configs/video_clip.py's recipe (towers, data, the moving_shapes:retrieval eval) with the
shared network (`model.snp`) and the three terms contrastive + mlm + matching. Args: `tiny`
(a smoke run, video_clip's tiny towers) and `demo` (video_clip's demo: 48 px, 8 frames, batch
32, 300 steps, with its `demo_temporal` pooling: the temporal transformer and the
`time_order` term; figures in docs/methods.md).

    vljax train --config configs/snp_s3.py:demo --workdir runs/snp_s3_demo
"""

from configs import video_clip


def get_config(arg=None):
    if arg not in ("demo", "tiny"):
        raise ValueError(f"configs/snp_s3.py:{arg}: expected demo or tiny")
    c = video_clip.get_config(arg)
    c.method = "snp_s3"
    # Two masked pieces of a caption like "a big red circle moves to the right" are most often
    # its colour and direction (or shape): the words that tell clips apart.
    if arg == "tiny":
        c.model.snp.update(depth=1, heads=2, mlp_dim=64, mask_words=2)
        return c
    c.model.snp.update(depth=2, heads=4, mlp_dim=512, mask_words=2)
    return video_clip.temporal(c)
