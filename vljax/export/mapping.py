"""Parameter maps between vljax trees and Hugging Face CLIPModel / SiglipModel state dicts.

vljax params here are host numpy trees with unstacked layers (`encoderblock_{i}`; see
`vljax.models.unstack_layers`). HF tensors are numpy arrays in torch layout: Linear weights
are `[out, in]`, the patch conv is OIHW. Both directions are pure reshapes/transposes, so a
round trip HF -> vljax -> HF returns identical tensors. The layout pieces (attention, norms,
dense, patch conv) are public: the open_clip mapping (open_clip_mapping.py) uses them too.
"""

import numpy as np

CLIP, SIGLIP = "clip", "siglip"


# ---- pieces shared by both families ---------------------------------------------------------


def qkv_to_torch(kernel):  # [D, H, Dh] -> [H*Dh, D]
    return kernel.reshape(kernel.shape[0], -1).T


def out_to_torch(kernel):  # [H, Dh, D] -> [D, H*Dh]
    return kernel.reshape(-1, kernel.shape[-1]).T


def put_ln(sd, prefix, ln):
    sd[f"{prefix}.weight"] = ln["scale"]
    sd[f"{prefix}.bias"] = ln["bias"]


def put_dense(sd, prefix, d):
    sd[f"{prefix}.weight"] = d["kernel"].T
    if "bias" in d:
        sd[f"{prefix}.bias"] = d["bias"]


def _encoder_to_hf(sd, prefix, encoder):
    depth = len([k for k in encoder if k.startswith("encoderblock_")])
    for i in range(depth):
        b = encoder[f"encoderblock_{i}"]
        p = f"{prefix}.encoder.layers.{i}"
        put_ln(sd, f"{p}.layer_norm1", b["ln_1"])
        put_ln(sd, f"{p}.layer_norm2", b["ln_2"])
        for ours, theirs in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
            sd[f"{p}.self_attn.{theirs}.weight"] = qkv_to_torch(b["attn"][ours]["kernel"])
            sd[f"{p}.self_attn.{theirs}.bias"] = b["attn"][ours]["bias"].reshape(-1)
        sd[f"{p}.self_attn.out_proj.weight"] = out_to_torch(b["attn"]["out"]["kernel"])
        sd[f"{p}.self_attn.out_proj.bias"] = b["attn"]["out"]["bias"]
        put_dense(sd, f"{p}.mlp.fc1", b["mlp"]["fc1"])
        put_dense(sd, f"{p}.mlp.fc2", b["mlp"]["fc2"])


def attention_to_torch(sd, prefix, attn):
    """q/k/v/out DenseGeneral params -> torch `nn.MultiheadAttention` (`in_proj_weight` packs
    q, k, v as `[3 * D, D]` rows)."""
    qkv = ("query", "key", "value")
    sd[f"{prefix}.in_proj_weight"] = np.concatenate([qkv_to_torch(attn[k]["kernel"]) for k in qkv])
    sd[f"{prefix}.in_proj_bias"] = np.concatenate([attn[k]["bias"].reshape(-1) for k in qkv])
    sd[f"{prefix}.out_proj.weight"] = out_to_torch(attn["out"]["kernel"])
    sd[f"{prefix}.out_proj.bias"] = attn["out"]["bias"]


def attention_from_torch(sd, prefix, heads):
    """torch `nn.MultiheadAttention` tensors -> vljax's q/k/v/out params."""
    w_in = get_tensor(sd, f"{prefix}.in_proj_weight")
    b_in = get_tensor(sd, f"{prefix}.in_proj_bias")
    d = w_in.shape[1]
    attn = {}
    for j, k in enumerate(("query", "key", "value")):
        attn[k] = dict(
            kernel=w_in[j * d : (j + 1) * d].T.reshape(d, heads, -1),
            bias=b_in[j * d : (j + 1) * d].reshape(heads, -1),
        )
    w = get_tensor(sd, f"{prefix}.out_proj.weight")
    attn["out"] = dict(
        kernel=w.T.reshape(heads, -1, d), bias=get_tensor(sd, f"{prefix}.out_proj.bias")
    )
    return attn


def posemb_with_patch_bias(image_posemb, patch_bias):
    """The image position table with the patch conv's bias folded in. OpenAI-layout towers (HF
    CLIP, open_clip) have a bias-free patch conv; a per-channel bias added to every patch token
    is the same as adding it to the patch rows (not the cls row) of the position embedding."""
    pos = np.array(image_posemb, np.float32)
    pos[1:] = pos[1:] + patch_bias
    return pos


def get_tensor(sd, key):
    if key not in sd:
        raise KeyError(f"checkpoint has no tensor {key!r}")
    return np.asarray(sd[key])


def ln_from(sd, prefix):
    return dict(scale=get_tensor(sd, f"{prefix}.weight"), bias=get_tensor(sd, f"{prefix}.bias"))


def dense_from(sd, prefix, bias=True):
    d = dict(kernel=get_tensor(sd, f"{prefix}.weight").T)
    if bias:
        d["bias"] = get_tensor(sd, f"{prefix}.bias")
    return d


def _encoder_from_hf(sd, prefix, depth, heads):
    enc = {}
    for i in range(depth):
        p = f"{prefix}.encoder.layers.{i}"
        attn = {}
        for ours, theirs in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
            w = get_tensor(sd, f"{p}.self_attn.{theirs}.weight")  # [H*Dh, D]
            d = w.shape[1]
            attn[ours] = dict(
                kernel=w.T.reshape(d, heads, -1),
                bias=get_tensor(sd, f"{p}.self_attn.{theirs}.bias").reshape(heads, -1),
            )
        w = get_tensor(sd, f"{p}.self_attn.out_proj.weight")  # [D, H*Dh]
        attn["out"] = dict(
            kernel=w.T.reshape(heads, -1, w.shape[0]),
            bias=get_tensor(sd, f"{p}.self_attn.out_proj.bias"),
        )
        enc[f"encoderblock_{i}"] = dict(
            ln_1=ln_from(sd, f"{p}.layer_norm1"),
            ln_2=ln_from(sd, f"{p}.layer_norm2"),
            attn=attn,
            mlp=dict(fc1=dense_from(sd, f"{p}.mlp.fc1"), fc2=dense_from(sd, f"{p}.mlp.fc2")),
        )
    return enc


def patch_to_torch(kernel):  # HWIO -> OIHW
    return np.transpose(kernel, (3, 2, 0, 1))


def patch_from_torch(weight):  # OIHW -> HWIO
    return np.transpose(weight, (2, 3, 1, 0))


# ---- vljax -> HF ----------------------------------------------------------------------------


def to_hf_state_dict(params, family, image_posemb):
    """vljax params (unstacked numpy tree) -> HF state dict for `family` (clip | siglip).

    `image_posemb` is the `[num_tokens, width]` position embedding as the model adds it
    (learned or the materialised sincos2d table, cls row included for CLIP).
    """
    img, txt = params["img"], params["txt"]
    sd = {}
    v = "vision_model"
    conv_w = patch_to_torch(img["embedding"]["kernel"])
    conv_b = img["embedding"]["bias"]
    sd[f"{v}.embeddings.patch_embedding.weight"] = conv_w
    pos = np.asarray(image_posemb, np.float32)
    if family == CLIP:
        pos = posemb_with_patch_bias(pos, conv_b)
        sd[f"{v}.embeddings.class_embedding"] = img["cls"].reshape(-1)
        put_ln(sd, f"{v}.pre_layrnorm", img["pre_norm"])
    else:
        sd[f"{v}.embeddings.patch_embedding.bias"] = conv_b
    sd[f"{v}.embeddings.position_embedding.weight"] = pos
    _encoder_to_hf(sd, v, img["encoder"])
    put_ln(sd, f"{v}.post_layernorm", img["encoder_norm"])
    if family == CLIP:
        sd["visual_projection.weight"] = img["head"]["kernel"].T
    else:
        m = img["map"]
        h = f"{v}.head"
        sd[f"{h}.probe"] = m["probe"]
        attention_to_torch(sd, f"{h}.attention", m["attn"])
        put_ln(sd, f"{h}.layernorm", m["ln"])
        put_dense(sd, f"{h}.mlp.fc1", m["mlp"]["fc1"])
        put_dense(sd, f"{h}.mlp.fc2", m["mlp"]["fc2"])

    t = "text_model"
    sd[f"{t}.embeddings.token_embedding.weight"] = txt["embedding"]["embedding"]
    sd[f"{t}.embeddings.position_embedding.weight"] = txt["pos_embedding"][0]
    _encoder_to_hf(sd, t, txt["encoder"])
    put_ln(sd, f"{t}.final_layer_norm", txt["encoder_norm"])
    if family == CLIP:
        sd["text_projection.weight"] = txt["head"]["kernel"].T
        sd["logit_scale"] = np.asarray(params["log_scale"]).reshape(())
    else:
        put_dense(sd, f"{t}.head", txt["head"])
        sd["logit_scale"] = np.asarray(params["log_scale"]).reshape(1)
        sd["logit_bias"] = np.asarray(params["bias"]).reshape(1)
    return {k: np.array(x, np.float32, order="C") for k, x in sd.items()}


# ---- HF -> vljax ----------------------------------------------------------------------------


def from_hf_state_dict(sd, family, vision_depth, vision_heads, text_depth, text_heads):
    """HF state dict -> vljax params (unstacked numpy tree) with posemb=learn."""
    sd = {k.removeprefix("model."): v for k, v in sd.items()}
    v, t = "vision_model", "text_model"
    conv_w = get_tensor(sd, f"{v}.embeddings.patch_embedding.weight")
    img = dict(
        embedding=dict(
            kernel=patch_from_torch(conv_w),
            bias=(
                get_tensor(sd, f"{v}.embeddings.patch_embedding.bias")
                if family == SIGLIP
                else np.zeros(conv_w.shape[0], np.float32)
            ),
        ),
        pos_embedding=get_tensor(sd, f"{v}.embeddings.position_embedding.weight")[None],
        encoder=_encoder_from_hf(sd, v, vision_depth, vision_heads),
        encoder_norm=ln_from(sd, f"{v}.post_layernorm"),
    )
    if family == CLIP:
        img["cls"] = get_tensor(sd, f"{v}.embeddings.class_embedding").reshape(1, 1, -1)
        img["pre_norm"] = ln_from(sd, f"{v}.pre_layrnorm")
        img["head"] = dict(kernel=get_tensor(sd, "visual_projection.weight").T)
    else:
        h = f"{v}.head"
        img["map"] = dict(
            probe=get_tensor(sd, f"{h}.probe"),
            attn=attention_from_torch(sd, f"{h}.attention", vision_heads),
            ln=ln_from(sd, f"{h}.layernorm"),
            mlp=dict(fc1=dense_from(sd, f"{h}.mlp.fc1"), fc2=dense_from(sd, f"{h}.mlp.fc2")),
        )
    txt = dict(
        embedding=dict(embedding=get_tensor(sd, f"{t}.embeddings.token_embedding.weight")),
        pos_embedding=get_tensor(sd, f"{t}.embeddings.position_embedding.weight")[None],
        encoder=_encoder_from_hf(sd, t, text_depth, text_heads),
        encoder_norm=ln_from(sd, f"{t}.final_layer_norm"),
    )
    params = dict(img=img, txt=txt)
    if family == CLIP:
        txt["head"] = dict(kernel=get_tensor(sd, "text_projection.weight").T)
        params["log_scale"] = get_tensor(sd, "logit_scale").reshape(())
    else:
        txt["head"] = dense_from(sd, f"{t}.head")
        params["log_scale"] = get_tensor(sd, "logit_scale").reshape(())
        params["bias"] = get_tensor(sd, "logit_bias").reshape(())
    return params
