"""Parameter maps between vljax trees and open_clip `CLIP` state dicts, both directions.

vljax params are host numpy trees with unstacked layers (`encoderblock_{i}`); open_clip tensors
are numpy arrays in torch layout (OpenAI's names: `visual.conv1`, `transformer.resblocks.{i}`,
`attn.in_proj_weight` packing q/k/v). open_clip's patch conv has no bias: vljax's is folded into
the patch rows of the position table, so the import has a zero conv bias and that table; a
round trip open_clip -> vljax -> open_clip returns identical tensors.
"""

import numpy as np

from vljax.export.mapping import (
    attention_from_torch,
    attention_to_torch,
    dense_from,
    get_tensor,
    ln_from,
    patch_from_torch,
    patch_to_torch,
    posemb_with_patch_bias,
    put_dense,
    put_ln,
)


def _blocks_to_torch(sd, prefix, encoder):
    depth = len([k for k in encoder if k.startswith("encoderblock_")])
    for i in range(depth):
        b, p = encoder[f"encoderblock_{i}"], f"{prefix}.resblocks.{i}"
        put_ln(sd, f"{p}.ln_1", b["ln_1"])
        put_ln(sd, f"{p}.ln_2", b["ln_2"])
        attention_to_torch(sd, f"{p}.attn", b["attn"])
        put_dense(sd, f"{p}.mlp.c_fc", b["mlp"]["fc1"])
        put_dense(sd, f"{p}.mlp.c_proj", b["mlp"]["fc2"])


def _blocks_from_torch(sd, prefix, depth, heads):
    enc = {}
    for i in range(depth):
        p = f"{prefix}.resblocks.{i}"
        enc[f"encoderblock_{i}"] = dict(
            ln_1=ln_from(sd, f"{p}.ln_1"),
            ln_2=ln_from(sd, f"{p}.ln_2"),
            attn=attention_from_torch(sd, f"{p}.attn", heads),
            mlp=dict(fc1=dense_from(sd, f"{p}.mlp.c_fc"), fc2=dense_from(sd, f"{p}.mlp.c_proj")),
        )
    return enc


def to_open_clip_state_dict(params, image_posemb):
    """vljax params (unstacked numpy tree) -> open_clip `CLIP` state dict (float32 numpy).

    `image_posemb` is the `[1 + patches, width]` table the image tower adds (cls row first;
    the learned one or the materialised sincos2d). Present params decide the optional tensors:
    `img/pre_norm` -> `visual.ln_pre`, `txt/head/bias` -> a biased `text_projection` Linear,
    `bias` -> `logit_bias`.
    """
    img, txt = params["img"], params["txt"]
    sd = {}
    sd["visual.conv1.weight"] = patch_to_torch(img["embedding"]["kernel"])
    sd["visual.class_embedding"] = img["cls"].reshape(-1)
    sd["visual.positional_embedding"] = posemb_with_patch_bias(
        image_posemb, img["embedding"]["bias"]
    )
    if "pre_norm" in img:
        put_ln(sd, "visual.ln_pre", img["pre_norm"])
    _blocks_to_torch(sd, "visual.transformer", img["encoder"])
    put_ln(sd, "visual.ln_post", img["encoder_norm"])
    sd["visual.proj"] = img["head"]["kernel"]  # [width, embed], applied as x @ proj

    sd["token_embedding.weight"] = txt["embedding"]["embedding"]
    sd["positional_embedding"] = txt["pos_embedding"][0]
    _blocks_to_torch(sd, "transformer", txt["encoder"])
    put_ln(sd, "ln_final", txt["encoder_norm"])
    if "bias" in txt["head"]:  # proj_bias: an nn.Linear, weight [out, in]
        put_dense(sd, "text_projection", txt["head"])
    else:  # a bare [width, embed] Parameter, applied as x @ text_projection
        sd["text_projection"] = txt["head"]["kernel"]
    sd["logit_scale"] = np.asarray(params["log_scale"]).reshape(())
    if "bias" in params:
        sd["logit_bias"] = np.asarray(params["bias"]).reshape(())
    return {k: np.array(x, np.float32, order="C") for k, x in sd.items()}


def from_open_clip_state_dict(sd, model_config):
    """open_clip `CLIP` state dict -> vljax params (unstacked, posemb=learn) for the
    `config.model` that `open_clip_config.vljax_model_config` derived."""
    i, t = model_config.image, model_config.text
    conv_w = get_tensor(sd, "visual.conv1.weight")
    img = dict(
        embedding=dict(kernel=patch_from_torch(conv_w), bias=np.zeros(conv_w.shape[0], np.float32)),
        cls=get_tensor(sd, "visual.class_embedding").reshape(1, 1, -1),
        pos_embedding=get_tensor(sd, "visual.positional_embedding")[None],
        encoder=_blocks_from_torch(sd, "visual.transformer", i.depth, i.heads),
        encoder_norm=ln_from(sd, "visual.ln_post"),
        head=dict(kernel=get_tensor(sd, "visual.proj")),
    )
    if i.pre_norm:
        img["pre_norm"] = ln_from(sd, "visual.ln_pre")
    txt = dict(
        embedding=dict(embedding=get_tensor(sd, "token_embedding.weight")),
        pos_embedding=get_tensor(sd, "positional_embedding")[None],
        encoder=_blocks_from_torch(sd, "transformer", t.depth, t.heads),
        encoder_norm=ln_from(sd, "ln_final"),
    )
    if t.proj == "linear_bias":
        txt["head"] = dense_from(sd, "text_projection")
    else:
        txt["head"] = dict(kernel=get_tensor(sd, "text_projection"))
    params = dict(img=img, txt=txt, log_scale=get_tensor(sd, "logit_scale").reshape(()))
    if model_config.get("bias_init") is not None:
        params["bias"] = get_tensor(sd, "logit_bias").reshape(())
    return params
