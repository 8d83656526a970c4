"""CLIP ViT-B/16 (Radford et al. 2021): softmax loss, CLS pooling, causal text with EOS pooling.

Full size: does not train on a laptop, but builds and compiles abstractly (tests do that).
`vljax train --config configs/clip_vit_b16.py --workdir DIR --config.data.train.dataset=tfds:NAME`
"""

from configs import common


def get_config(arg=None):
    c = common.base_config()
    c.batch_size = 32768
    c.total_steps = 100_000
    c.checkpoint_every_steps = 2000
    c.eval_every_steps = 5000
    c.model.embed_dim = 512
    c.model.image = common.image_tower("B", 16, 224, pool="cls", posemb="learn")
    c.model.image.pre_norm = True  # CLIP's ln_pre on the patch + CLS embeddings
    c.model.text = common.text_tower("B", 49408, 77, causal=True, pool="eos")
    c.model.activation = "quick_gelu"
    c.model.ln_eps = 1e-5
    c.model.dtype = "bfloat16"
    c.model.remat = True
    c.model.scan = True
    c.model.scale_init = 1 / 0.07
    c.loss.kind = "softmax"
    c.loss.impl = "all_gather"
    c.optimizer.learning_rate = 5e-4
    c.optimizer.warmup_steps = 2000
    c.optimizer.weight_decay = 0.2
    c.tokenizer.vocab_size = 49408
    c.mesh.fsdp = -1
    c.mesh.data = 1
    return c
