"""SigLIP ViT-B/16 (Zhai et al. 2023): sigmoid loss with learnable bias, MAP pooling,
bidirectional text pooled at the last position.

Full size: does not train on a laptop, but builds and compiles abstractly (tests do that).
"""

from configs import common


def get_config(arg=None):
    c = common.base_config()
    c.batch_size = 32768
    c.total_steps = 100_000
    c.checkpoint_every_steps = 2000
    c.eval_every_steps = 5000
    c.model.embed_dim = 768
    c.model.image = common.image_tower("B", 16, 224, pool="map", posemb="learn")
    c.model.image.proj = "none"  # the MAP head's output is the embedding
    c.model.text = common.text_tower("B", 32000, 64, causal=False, pool="last")
    c.model.text.width, c.model.text.heads, c.model.text.mlp_dim = 768, 12, 3072
    c.model.text.proj = "linear_bias"
    c.model.activation = "gelu_tanh"
    c.model.ln_eps = 1e-6
    c.model.dtype = "bfloat16"
    c.model.remat = True
    c.model.scan = True
    c.model.scale_init = 10.0
    c.model.bias_init = -10.0
    c.loss.kind = "sigmoid"
    c.loss.impl = "ring"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 2000
    c.optimizer.weight_decay = 1e-4
    c.tokenizer.vocab_size = 32000
    c.mesh.fsdp = -1
    c.mesh.data = 1
    return c
