"""The demo: a tiny two-tower model on the built-in procedural shapes data.

Trains in under 5 minutes on 2 CPU cores; every method's `:demo` builds on it, and `make
demo` runs its lighter `:quickstart` variant. What makes a tiny ViT learn the shape of a 12 px
object in a few hundred steps (measured, docs/data.md): a conv stem of
stride-1 convolutions with max pooling, learned (not sincos) position embeddings, and a
sharper initial temperature (logit scale 30).
"""

import ml_collections

from configs import common
from vljax.token_ids import EOS_ID, PAD_ID


def get_config(arg=None):
    c = common.base_config()
    c.batch_size = 128
    c.total_steps = 400
    c.log_every_steps = 20
    c.checkpoint_every_steps = 200
    c.eval_every_steps = 0

    c.model.embed_dim = 128
    c.model.image.update(
        dict(
            image_size=64,  # 48 px: 0.85-0.91 zero-shot at 400 steps (docs/data.md)
            patch_size=8,
            width=128,
            depth=1,
            heads=4,
            mlp_dim=512,
            pool="gap",
            posemb="learn",
            pre_norm=False,
            stem="conv_pool",  # learns shape in ~300 steps; one patchify not in 1,000
            stem_width=16,
            proj="linear",
        )
    )
    c.model.text.update(
        dict(
            vocab_size=512,
            max_len=24,  # the longest English caption is 19 pieces + EOS
            width=128,
            depth=2,
            heads=4,
            mlp_dim=512,
            causal=True,
            pool="eos",
            eos_id=EOS_ID,
            pad_id=PAD_ID,
            proj="linear",
        )
    )
    c.model.scale_init = 30.0

    if arg in ("sigmoid", "siglip"):
        c.loss.kind = "sigmoid"
        c.model.scale_init = 10.0  # SigLIP's init: scale 10, bias -10
        c.model.bias_init = -10.0
    # Architectures that `vljax export --format hf` can write (CLIPModel / SiglipModel); their
    # linear patch embedding learns shapes more slowly than the default conv stem.
    if arg == "clip":
        c.model.image.update(stem="patch", pool="cls", posemb="learn", pre_norm=True)
        c.model.activation = "quick_gelu"
    elif arg == "siglip":
        c.model.embed_dim = c.model.image.width
        c.model.image.update(stem="patch", pool="map", posemb="learn", proj="none")
        c.model.text.update(causal=False, pool="last", proj="linear_bias")
        c.model.activation = "gelu_tanh"
        c.model.ln_eps = 1e-6
    elif arg == "quickstart":
        # `make demo`: 56 px images, MLPs of 256 in both towers, 20 text positions (the
        # longest English caption is 19 pieces + EOS) and 380 steps: 6.5 TFLOP of training,
        # 42 % less than the base that every method's `:demo` builds on, for a first run within
        # 5 minutes on the slower 2-core kind (docs/benchmarks.md, "Demo end to end").
        c.model.image.update(image_size=56, mlp_dim=256)
        c.model.text.update(mlp_dim=256, max_len=20)
        c.total_steps = 380
    elif arg not in (None, "sigmoid"):
        raise ValueError(
            f"configs/demo.py:{arg}: expected no arg, sigmoid, clip, siglip or quickstart"
        )

    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 50
    c.optimizer.weight_decay = 1e-4

    c.tokenizer.vocab_size = 512
    c.tokenizer.train_captions = 20_000  # the same 200 pieces as 200k captions, in 1 s not 11

    c.data.train.dataset = "shapes"
    c.data.train.size = 200_000
    c.data.train.lang = "en"

    c.evals = ml_collections.ConfigDict(
        dict(
            shapes_zeroshot=dict(type="zeroshot", dataset="shapes:zeroshot", key="shapes"),
            shapes_retrieval=dict(type="retrieval", dataset="shapes:retrieval", key="shapes"),
        )
    )
    return c


def tiny(c):
    """A smoke-run version of a demo-based recipe: a few-thousand-parameter model on 32 px
    shapes, 60 steps, no evals; about a minute on 2 CPU cores with a fresh workdir. A linear
    patch stem, not the demo's conv stem: a smoke run shows a falling loss either way, and
    the conv stem's compile and run at batch 32 were 15% of the methods' test seconds (its
    own tests are in tests/models/test_models.py)."""
    c.batch_size = 32
    c.total_steps = 60
    c.log_every_steps = 10
    c.checkpoint_every_steps = 30
    c.model.embed_dim = 32
    c.model.image.update(image_size=32, width=32, depth=1, heads=2, mlp_dim=64, stem="patch")
    c.model.text.update(width=32, depth=1, heads=2, mlp_dim=64, vocab_size=256, max_len=16)
    c.tokenizer.vocab_size = 256
    c.tokenizer.train_captions = 5_000
    c.optimizer.warmup_steps = 5
    c.optimizer.learning_rate = 3e-3
    c.optimizer.flatten = True  # a few dozen small params: the step compiles in half the time
    c.data.train.size = 5_000
    c.evals = {}
    return c
