"""SNP-S3 (arXiv 2401.17773) on the moving_shapes clips (vljax/methods/snp_s3.py, issue 15).

configs/video_clip.py's recipe (towers, data, the moving_shapes:retrieval eval) with the
shared network (`model.snp`) and the three terms contrastive + mlm + matching. Args: `tiny`
(a smoke run, video_clip's tiny towers) and `demo` (video_clip's `demo_early_128`: early
fusion, 48 px clips of 8 frames, batch 128, 400 steps; the S3 tasks on every 8th clip at
weight 0.5 each; figures in docs/methods.md).

    vljax train --config configs/snp_s3.py:demo --workdir runs/snp_s3_demo
"""

import ml_collections

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
    # Early fusion's one ViT pass per clip is what lets batch 128 x 400 steps fit in the
    # 10 minutes. The S3 tasks' text-tower and cross-modal passes on every clip trained 53
    # clips/s (on every 4th, 88; on every 8th, 109), so they run on 16 of the 128 (the
    # contrastive term on all), and at weight 0.5 they leave the shared network more to the
    # contrastive term: on every 4th at weight 1, R@1 was 0.457 / 0.484 (docs/methods.md).
    c.model.snp.update(depth=2, heads=4, mlp_dim=512, mask_words=2, s3_every=8)
    video_clip.early_fusion(c)
    c.loss.terms = ml_collections.ConfigDict({"contrastive": 1.0, "mlm": 0.5, "matching": 0.5})
    return c
