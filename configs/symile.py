"""Symile (Saporta et al. 2024, arXiv 2411.01053): contrastive learning over three
modalities with the multilinear inner product.

The demo task (`shapes_symile`, vljax/data/shapes_symile.py): an image of one shape in colour
c, a caption "shift by k", and a third modality naming colour (c + k) mod 6, spelled as a
token sequence for a third tower. Every pair of modalities is independent; only the triple
is dependent, so pairwise CLIP has nothing to learn and Symile can predict the third from
the other two. The eval scores the 6 candidate thirds for each held-out (image, caption).

    vljax train --config configs/symile.py:demo --workdir runs/symile
    vljax train --config configs/symile.py:demo_pairwise --workdir runs/symile_pairwise
    vljax train --config configs/symile.py:tiny --workdir /tmp/symile   # a smoke run

`:demo_pairwise` is `:demo` with the term "pairwise" (the mean of the three pairs' CLIP
losses) in place of "symile": the same towers, data and steps. `:demo_missing` is `:demo` with
each training example's modalities blanked independently with probability 0.1
(`data.train.missing_prob`, docs/methods.md).
"""

import ml_collections

from configs import demo

THIRD_EVAL = dict(type="third_modality", dataset="shapes_symile:test", key="shapes_symile")


def get_config(arg=None):
    if arg not in ("demo", "demo_pairwise", "demo_missing", "tiny"):
        raise ValueError(
            f"configs/symile.py:{arg}: expected demo, demo_pairwise, demo_missing or tiny"
        )
    c = demo.get_config()
    c.method = "symile"
    c.data.train.dataset = "shapes_symile"
    c.data.train.size = 100_000
    c.loss.symile_negatives = "n"
    if arg == "demo_pairwise":
        c.loss.terms = ml_collections.ConfigDict({"pairwise": 1.0})
    # The captions are six phrases ("shift by zero" .. "shift by five"): a small vocabulary.
    c.tokenizer.vocab_size = 64
    c.tokenizer.train_captions = 2_000
    c.model.text.update(vocab_size=64, max_len=8)
    # Only the image's colour matters: a small image tower at 32 px is enough.
    c.model.embed_dim = 64
    c.model.image.update(image_size=32, width=64, depth=1, heads=4, mlp_dim=256, stem_width=8)
    c.model.text.update(width=64, depth=1, heads=4, mlp_dim=256)
    c.model.third.update(max_len=8, width=64, depth=1, heads=4, mlp_dim=256)
    c.batch_size = 128
    c.total_steps = 300
    c.checkpoint_every_steps = 300
    c.optimizer.warmup_steps = 30
    c.evals = ml_collections.ConfigDict(dict(shapes_symile=THIRD_EVAL))
    if arg == "demo_missing":  # the paper's missing modalities: each blanked with p = 0.1
        c.data.train.missing_prob = 0.1
    if arg == "tiny":  # a smoke run: demo.tiny's towers and steps, and a small eval
        demo.tiny(c)
        # Symile starts on a plateau: the towers' embeddings barely vary at init, and the
        # joint task's signal is a product of all three embeddings' variations. Batch 256 at
        # lr 1e-3 after 30 warm-up steps leaves it within the 60 steps for seeds 0-2
        # (docs/methods.md); demo.tiny's batch 32 at lr 3e-3 did not within 150.
        c.batch_size = 256
        # The demo's conv stem, not demo.tiny's patch stem: with the patch stem seed 1 stays on
        # the plateau through the 60 steps (lr 1e-3 to 3e-3, 10 or 30 warm-up steps; docs/
        # benchmarks.md).
        c.model.image.stem = "conv_pool"
        c.optimizer.update(learning_rate=1e-3, warmup_steps=30)
        c.model.text.update(vocab_size=64, max_len=8)
        c.tokenizer.vocab_size = 64
        c.tokenizer.train_captions = 500
        c.model.third.update(width=32, depth=1, heads=2, mlp_dim=64)
        c.evals = ml_collections.ConfigDict(dict(shapes_symile=dict(THIRD_EVAL, size=72)))
    return c
