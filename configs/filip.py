"""FILIP (Yao et al. 2021, arXiv 2111.07783): CLIP's towers trained by token-wise late
interaction instead of pooled embeddings.

Each image patch is matched to its most similar word and each word to its most similar
patch; the averaged maxima are the image-text scores of a contrastive loss
(`vljax.losses.filip_loss`, tiled so no device holds [b, B, Np, Nt]). Retrieval and
zero-shot score with the same late interaction.

    vljax train --config configs/filip.py:demo --workdir runs/filip    # shapes, 64 px
    vljax train --config configs/filip.py:tiny --workdir /tmp/filip    # a smoke run
"""

from configs import demo


def get_config(arg=None):
    if arg not in ("demo", "tiny"):
        raise ValueError(f"configs/filip.py:{arg}: expected demo or tiny")
    c = demo.get_config()
    c.method = "filip"
    if arg == "tiny":
        demo.tiny(c)
    return c
