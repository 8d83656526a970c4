"""CLIP ViT-L/14 (Radford et al. 2021): configs/clip_vit_b16.py at OpenAI's L/14 shapes (image
224, patch 14, width 1024, depth 24, 16 heads, MLP 4096; text width 768, depth 12, 12 heads;
embeddings 768). About 428M parameters.

Full size: sized for a pod, not a laptop; `vljax compile --config configs/clip_vit_l14.py
--devices 256` compiles its step for 256 devices here (docs/scaling.md).
"""

from configs import clip_vit_b16, common


def get_config(arg=None):
    c = clip_vit_b16.get_config(arg)
    c.model.embed_dim = 768
    c.model.image = common.image_tower("L", 14, 224, pool="cls", posemb="learn")
    c.model.image.pre_norm = True  # CLIP's ln_pre on the patch + CLS embeddings
    c.model.text = common.text_tower("L", 49408, 77, causal=True, pool="eos")
    return c
