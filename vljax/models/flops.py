"""Model FLOPs of a two-tower (CLIP / SigLIP) train step, counted from the architecture.

MFU is quoted against these ("model FLOPs", as in PaLM's appendix B): the matmuls the model
needs, 2 FLOPs per multiply-add, whatever the step really runs. A rematerialised forward
pass is not counted (it is overhead the MFU should show), nor elementwise work (norms,
activations, softmax: a few percent). The compiled step's own count (XLA's cost analysis,
vljax/train/flops.py) includes both; tests check the two agree on a step without remat.

Per image, forward:
  patch embedding   2 P (p^2 3) W                      (P patches of p x p pixels)
  each block        8 T W^2 + 4 T^2 W + 4 T W M        (q, k, v, out; scores and mix; MLP)
  MAP head          4 W^2 (1 + T) + 4 T W + 4 W M      (SigLIP's attention pooling)
  projection        2 W E
and the same for the text tower over its L tokens (the token embedding is a gather); the
contrastive logits cost 2 B E per image for a global batch B. Training = 3 x forward (the
backward pass costs twice the forward), less the patch embedding's input gradient, which no
one asks for.
"""

from vljax.errors import ConfigError


def encoder_flops(tokens: int, width: int, mlp_dim: int, depth: int) -> float:
    """Forward FLOPs of `depth` pre-LN transformer blocks over `tokens` tokens, per example.
    Masked (causal) attention is counted in full: the kernels compute every score."""
    t, w, m = tokens, width, mlp_dim
    return depth * (8 * t * w * w + 4 * t * t * w + 4 * t * w * m)


def image_tokens(image: dict) -> tuple[int, int]:
    """(patches, encoder tokens) of the image tower: the cls token, FLIP's patch dropout."""
    if image.get("stem", "patch") != "patch":
        raise ConfigError(
            f"model FLOPs are counted for model.image.stem='patch', not {image['stem']!r}; "
            "read the compiled step's count instead (`vljax compile`)"
        )
    patches = (image["image_size"] // image["patch_size"]) ** 2
    kept = max(1, round((1 - image.get("mask_ratio", 0.0)) * patches))
    return patches, kept + (image.get("pool", "cls") == "cls")


def image_forward_flops(model: dict) -> tuple[float, float]:
    """(patch embedding, everything after it) forward FLOPs of one image."""
    i, embed = model["image"], model["embed_dim"]
    patches, t = image_tokens(i)
    w, m = i["width"], i["mlp_dim"]
    stem = 2 * patches * i["patch_size"] ** 2 * 3 * w
    body = encoder_flops(t, w, m, i["depth"])
    if i.get("pool", "cls") == "map":
        body += 4 * w * w * (1 + t) + 4 * t * w + 4 * w * m
    if i.get("proj", "linear") == "linear":
        body += 2 * w * embed
    return float(stem), float(body)


def text_forward_flops(model: dict) -> float:
    """Forward FLOPs of one caption at model.text.max_len tokens."""
    t = model["text"]
    body = encoder_flops(t["max_len"], t["width"], t["mlp_dim"], t["depth"])
    return float(body + 2 * t["width"] * model["embed_dim"])


def train_flops_per_image(model: dict, batch_size: int) -> dict:
    """Model FLOPs of one train step, per image-caption pair of a global batch of
    `batch_size`: {"image", "text", "loss", "total"} (training, forward + backward)."""
    stem, body = image_forward_flops(model)
    image = 2 * stem + 3 * body  # no gradient with respect to the pixels
    text = 3 * text_forward_flops(model)
    loss = 3 * 2 * batch_size * model["embed_dim"]
    return {"image": image, "text": text, "loss": float(loss), "total": image + text + loss}
