"""Which HF family a vljax model config exports to, and the configs on either side.

CLIPModel: cls pooling after HF's `pre_layrnorm`, a linear image projection, a causal text
tower pooled at the first EOS with a bias-free projection, softmax loss, no logit bias.
SiglipModel: MAP pooling with no image projection, a bidirectional text tower pooled at the
last position with a biased head, sigmoid loss with a logit bias.
"""

import math

import ml_collections

from vljax.errors import ExportError
from vljax.export.mapping import CLIP, SIGLIP
from vljax.token_ids import EOS_ID, PAD_ID

# vljax activation -> HF `hidden_act`
ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "quick_gelu": "quick_gelu"}
ACTIVATIONS_FROM_HF = {
    "gelu": "gelu",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "quick_gelu": "quick_gelu",
}


def _requirements(family):
    if family == CLIP:
        return [
            ("model.image.stem", "patch", "CLIPModel embeds patches with one convolution"),
            ("model.image.pool", "cls", "CLIPModel pools the class token"),
            ("model.image.pre_norm", True, "CLIPModel always applies `pre_layrnorm`"),
            ("model.image.proj", "linear", "CLIPModel has a bias-free visual_projection"),
            ("model.text.causal", True, "CLIPModel's text tower is always causal"),
            ("model.text.pool", "eos", "CLIPModel pools the first EOS token"),
            ("model.text.proj", "linear", "CLIPModel has a bias-free text_projection"),
            ("model.bias_init", None, "CLIPModel has no logit bias"),
            ("loss.kind", "softmax", "CLIP is trained with the softmax loss"),
        ]
    return [
        ("model.image.stem", "patch", "SiglipModel embeds patches with one convolution"),
        ("model.image.pool", "map", "SiglipModel pools with its attention head"),
        ("model.image.pre_norm", False, "SiglipModel has no pre-encoder layer norm"),
        ("model.image.proj", "none", "SiglipModel's image embedding is the pooled output"),
        ("model.text.causal", False, "SiglipModel's text tower is bidirectional"),
        ("model.text.pool", "last", "SiglipModel pools the last position"),
        ("model.text.proj", "linear_bias", "SiglipModel's text head has a bias"),
        ("loss.kind", "sigmoid", "SigLIP is trained with the sigmoid loss"),
    ]


def _lookup(config, dotted):
    node = config
    for part in dotted.split(".")[:-1]:
        node = node[part]
    last = dotted.split(".")[-1]
    defaults = {"pre_norm": False, "pad_id": PAD_ID, "eos_id": EOS_ID, "stem": "patch"}
    return node.get(last, defaults.get(last))


def hf_family(config):
    """`clip` or `siglip` for a full run config; ExportError naming every incompatible field."""
    pool = config.model.image.get("pool")
    if pool == "cls":
        family = CLIP
    elif pool == "map":
        family = SIGLIP
    else:
        raise ExportError(
            f"model.image.pool={pool!r} cannot be exported: transformers' CLIPModel pools the "
            "class token (pool='cls') and SiglipModel uses attention pooling (pool='map'); "
            "there is no HF image tower with global average pooling"
        )
    problems = []
    for field, want, why in _requirements(family):
        got = _lookup(config, field)
        if got != want:
            problems.append(f"  {field}={got!r} (needs {want!r}: {why})")
    if family == SIGLIP:
        if config.model.get("bias_init") is None:
            problems.append("  model.bias_init=None (needs a float: SiglipModel has logit_bias)")
        if config.model.embed_dim != config.model.image.width:
            problems.append(
                f"  model.embed_dim={config.model.embed_dim} (needs model.image.width="
                f"{config.model.image.width}: SiglipModel has no image projection)"
            )
    if family == CLIP and _lookup(config, "model.text.eos_id") == 2:
        problems.append(
            "  model.text.eos_id=2 (HF CLIP treats eos_token_id=2 as a legacy checkpoint and "
            "pools at the largest token id instead of the first EOS)"
        )
    if config.model.get("activation") not in ACTIVATIONS:
        problems.append(f"  model.activation={config.model.get('activation')!r} (unknown)")
    if problems:
        name = "CLIPModel" if family == CLIP else "SiglipModel"
        raise ExportError(
            f"this config cannot be exported as a transformers {name} (chosen because "
            f"model.image.pool={pool!r}); incompatible fields:\n" + "\n".join(problems)
        )
    return family


def hf_config_dict(config, family):
    """The `config.json` content (a dict) for the exported model."""
    m = config.model
    i, t = m.image, m.text
    act = ACTIVATIONS[m.activation]
    pad_id = _lookup(config, "model.text.pad_id")
    text = dict(
        vocab_size=t.vocab_size,
        hidden_size=t.width,
        intermediate_size=t.mlp_dim,
        num_hidden_layers=t.depth,
        num_attention_heads=t.heads,
        max_position_embeddings=t.max_len,
        hidden_act=act,
        layer_norm_eps=m.ln_eps,
        pad_token_id=0 if pad_id is None else pad_id,
        eos_token_id=_lookup(config, "model.text.eos_id"),
        bos_token_id=None,
    )
    vision = dict(
        hidden_size=i.width,
        intermediate_size=i.mlp_dim,
        num_hidden_layers=i.depth,
        num_attention_heads=i.heads,
        image_size=i.image_size,
        patch_size=i.patch_size,
        num_channels=3,
        hidden_act=act,
        layer_norm_eps=m.ln_eps,
    )
    if family == CLIP:
        text["projection_dim"] = vision["projection_dim"] = m.embed_dim
        return dict(
            model_type="clip",
            architectures=["CLIPModel"],
            projection_dim=m.embed_dim,
            logit_scale_init_value=float(math.log(m.scale_init)),
            text_config=text,
            vision_config=vision,
        )
    text["projection_size"] = m.embed_dim
    vision["vision_use_head"] = True
    return dict(
        model_type="siglip",
        architectures=["SiglipModel"],
        text_config=text,
        vision_config=vision,
    )


def vljax_model_config(hf_config):
    """A transformers CLIPConfig / SiglipConfig -> (family, vljax `config.model` ConfigDict)."""
    model_type = getattr(hf_config, "model_type", None)
    if model_type not in ("clip", "siglip"):
        raise ExportError(
            f"model_type={model_type!r}: vljax imports transformers CLIPModel (clip) and "
            "SiglipModel (siglip) checkpoints only"
        )
    family = CLIP if model_type == "clip" else SIGLIP
    tc, vc = hf_config.text_config, hf_config.vision_config
    for name, c in (("text_config", tc), ("vision_config", vc)):
        if c.hidden_act not in ACTIVATIONS_FROM_HF:
            raise ExportError(f"{name}.hidden_act={c.hidden_act!r} has no vljax equivalent")
    if ACTIVATIONS_FROM_HF[tc.hidden_act] != ACTIVATIONS_FROM_HF[vc.hidden_act]:
        raise ExportError(
            f"text hidden_act={tc.hidden_act!r} differs from vision hidden_act="
            f"{vc.hidden_act!r}; vljax uses one model.activation for both towers"
        )
    if tc.layer_norm_eps != vc.layer_norm_eps:
        raise ExportError("text and vision layer_norm_eps differ; vljax has one model.ln_eps")
    if family == SIGLIP and not getattr(vc, "vision_use_head", True):
        raise ExportError("vision_config.vision_use_head=False: a SigLIP without MAP head")
    m = ml_collections.ConfigDict()
    m.activation = ACTIVATIONS_FROM_HF[tc.hidden_act]
    m.ln_eps = float(tc.layer_norm_eps)
    m.dtype = "float32"
    m.remat = False
    m.scan = False
    m.image = ml_collections.ConfigDict(
        dict(
            image_size=vc.image_size,
            patch_size=vc.patch_size,
            width=vc.hidden_size,
            depth=vc.num_hidden_layers,
            heads=vc.num_attention_heads,
            mlp_dim=vc.intermediate_size,
            pool="cls" if family == CLIP else "map",
            posemb="learn",
            pre_norm=family == CLIP,
            proj="linear" if family == CLIP else "none",
            stem="patch",
        )
    )
    eos = tc.eos_token_id
    pad = tc.pad_token_id
    if family == CLIP:
        # Causal + first-EOS pooling never looks at padding, and CLIP's pad id is often a real
        # token (0 = "!"), so no padding mask. eos_token_id=2 is HF's legacy "argmax" pooling,
        # which is the first EOS when EOS is the largest id (OpenAI's vocab).
        if eos == 2:
            eos = tc.vocab_size - 1
        pad_id = None
    else:
        # vljax-trained SigLIPs pad with 0 and were trained with a padding mask; public
        # big_vision SigLIPs pad with "</s>" (id 1) and were trained attending to padding.
        pad_id = 0 if pad == 0 and eos != 0 else None
    m.text = ml_collections.ConfigDict(
        dict(
            vocab_size=tc.vocab_size,
            max_len=tc.max_position_embeddings,
            width=tc.hidden_size,
            depth=tc.num_hidden_layers,
            heads=tc.num_attention_heads,
            mlp_dim=tc.intermediate_size,
            causal=family == CLIP,
            pool="eos" if family == CLIP else "last",
            proj="linear" if family == CLIP else "linear_bias",
            eos_id=eos,
            pad_id=pad_id,
        )
    )
    # Initial values only: the imported log_scale / bias params carry the trained ones.
    if family == CLIP:
        m.scale_init = float(
            math.exp(getattr(hf_config, "logit_scale_init_value", math.log(1 / 0.07)))
        )
        m.bias_init = None
    else:
        m.scale_init, m.bias_init = 10.0, -10.0
    if family == CLIP:
        m.embed_dim = hf_config.projection_dim
    else:
        m.embed_dim = getattr(tc, "projection_size", None) or tc.hidden_size
        if m.embed_dim != vc.hidden_size:
            raise ExportError(
                f"SigLIP text projection_size={m.embed_dim} differs from the vision width "
                f"{vc.hidden_size}; vljax needs one embedding size"
            )
    return family, m
