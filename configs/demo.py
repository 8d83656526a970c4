"""The demo: a tiny two-tower model on the built-in procedural shapes data.

Trains in a few minutes on 2 CPU cores; `make demo` runs it.
"""

import ml_collections

from configs import common


def get_config(arg=None):
    c = common.base_config()
    c.batch_size = 128
    c.total_steps = 1200
    c.log_every_steps = 20
    c.checkpoint_every_steps = 400
    c.eval_every_steps = 0

    c.model.embed_dim = 128
    c.model.image = ml_collections.ConfigDict(
        dict(
            image_size=64,
            patch_size=8,
            width=128,
            depth=4,
            heads=4,
            mlp_dim=512,
            pool="gap",
            posemb="sincos2d",
            pre_norm=False,
            proj="linear",
        )
    )
    c.model.text = ml_collections.ConfigDict(
        dict(
            vocab_size=512,
            max_len=32,
            width=128,
            depth=3,
            heads=4,
            mlp_dim=512,
            causal=True,
            pool="eos",
            proj="linear",
        )
    )
    c.model.scale_init = 10.0

    if arg == "sigmoid":
        c.loss.kind = "sigmoid"
        c.model.bias_init = -10.0

    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 100
    c.optimizer.weight_decay = 1e-4

    c.tokenizer.vocab_size = 512

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
