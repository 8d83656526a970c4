"""vljax `config.model` <-> open_clip's `open_clip_config.json` (`model_cfg`, `preprocess_cfg`).

open_clip's `CLIP` class (open_clip/model.py, `CLIPVisionCfg` / `CLIPTextCfg`) is an OpenAI
two-tower: a ViT with one bias-free patch conv, a class token pooled after `ln_post` and a
bias-free `proj`; a text transformer pooled at the first EOS (`pool_type: "eos"`), first or last
position, projected with or without a bias, and no padding mask. vljax configs inside that
family export; everything else is refused naming the field, its value and the fix.
"""

import math

import ml_collections

from vljax.choices import ACTIVATIONS
from vljax.errors import ExportError
from vljax.token_ids import EOS_ID, PAD_ID

# open_clip's preprocessing equal to vljax.data.preprocess.inference_image + normalize: resize
# the shorter side with bicubic, centre crop, x / 255, mean = std = 0.5 (x / 127.5 - 1).
IMAGE_MEAN = IMAGE_STD = (0.5, 0.5, 0.5)

# The text_cfg / vision_cfg keys (and values) the import understands: anything else changes
# the architecture in a way vljax's towers do not have.
_VISION_KEYS = {"layers", "width", "head_width", "mlp_ratio", "patch_size", "image_size",
                "no_ln_pre", "pos_embed_type", "norm_kwargs", "act_kwargs", "patch_dropout",
                "pool_type", "output_tokens"}  # fmt: skip
_TEXT_KEYS = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio", "pad_id",
              "eos_id", "no_causal_mask", "pool_type", "proj_bias", "proj_type", "norm_kwargs",
              "act_kwargs", "hf_tokenizer_name", "tokenizer_mode", "tokenizer_kwargs",
              "output_tokens"}  # fmt: skip
_TOP_KEYS = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_scale",
             "init_logit_bias", "nonscalar_logit_scale"}  # fmt: skip
_GELU_APPROXIMATE = {"gelu": None, "gelu_tanh": "tanh"}  # nn.GELU(approximate=...)


def _get(config, dotted, default=None):
    node = config
    *parents, last = dotted.split(".")
    for p in parents:
        node = node[p]
    return node.get(last, default)


def _mlp_ratio(field, width, mlp_dim, problems):
    # open_clip sizes the MLP as int(width * mlp_ratio): the ratio must give mlp_dim back.
    ratio = mlp_dim / width
    if int(width * ratio) != mlp_dim:
        problems.append(f"  {field}={mlp_dim} (open_clip's int(width * mlp_ratio) cannot give it)")
    return ratio


def _refusals(config):
    m = config.model
    problems = []
    fixed = [
        ("model.image.stem", "patch", "open_clip's ViT embeds patches with one convolution"),
        ("model.image.pool", "cls", "open_clip's CLIP ViT pools the class token"),
        ("model.image.proj", "linear", "open_clip's ViT always has a bias-free `proj`"),
    ]
    for field, want, why in fixed:
        got = _get(config, field, "patch" if field.endswith("stem") else None)
        if got != want:
            problems.append(f"  {field}={got!r} (needs {want!r}: {why})")
    pool, causal = m.text.get("pool", "eos"), m.text.get("causal", True)
    if pool not in ("eos", "first", "last"):
        problems.append(
            f"  model.text.pool={pool!r} (needs 'eos', 'first' or 'last': open_clip's text "
            "tower has no mean pooling)"
        )
    # open_clip's CLIP text tower never masks padding. That changes nothing when causal
    # attention and eos / first pooling never let the pooled token see a pad.
    if m.text.get("pad_id", PAD_ID) is not None and not (causal and pool in ("eos", "first")):
        problems.append(
            f"  model.text.pad_id={m.text.get('pad_id', PAD_ID)!r} with causal={causal} and "
            f"pool={pool!r} (open_clip's CLIP attends to padding; this model masks it. Only "
            "causal eos / first pooling, or a model trained with pad_id=None, exports)"
        )
    if m.get("activation") not in ACTIVATIONS:
        problems.append(f"  model.activation={m.get('activation')!r} (unknown)")
    _mlp_ratio("model.image.mlp_dim", m.image.width, m.image.mlp_dim, problems)
    _mlp_ratio("model.text.mlp_dim", m.text.width, m.text.mlp_dim, problems)
    return problems


def check_open_clip_exportable(config):
    """Raises ExportError listing every field open_clip's CLIP cannot express."""
    problems = _refusals(config)
    if problems:
        raise ExportError(
            "this config cannot be exported as an open_clip CLIP (--format open_clip); "
            "incompatible fields:\n" + "\n".join(problems) + "\nTrain with a CLIP-style "
            "architecture (e.g. configs/demo.py:clip) or export with --format hf where it fits"
        )


def open_clip_config(config, tokenizer_dir_name=""):
    """The `open_clip_config.json` content for a vljax run config.

    `hf_tokenizer_name` (any non-empty value) makes `open_clip.get_tokenizer('local-dir:OUT')`
    build an `HFTokenizer` from the tokenizer files in OUT itself.
    """
    check_open_clip_exportable(config)
    m = config.model
    i, t = m.image, m.text
    norm = {"eps": float(m.ln_eps)}
    act = m.activation
    act_kwargs = None
    if act != "quick_gelu" and _GELU_APPROXIMATE[act] is not None:
        act_kwargs = {"approximate": _GELU_APPROXIMATE[act]}
    vision = dict(
        image_size=int(i.image_size),
        patch_size=int(i.patch_size),
        width=int(i.width),
        layers=int(i.depth),
        head_width=int(i.width // i.heads),
        mlp_ratio=i.mlp_dim / i.width,
        no_ln_pre=not i.get("pre_norm", False),
        pos_embed_type="learnable",  # sincos2d is written out as a table in the weights
        pool_type="tok",
        norm_kwargs=norm,
        act_kwargs=act_kwargs,
    )
    pool = t.get("pool", "eos")
    pad_id = t.get("pad_id", PAD_ID)
    text = dict(
        context_length=int(t.max_len),
        vocab_size=int(t.vocab_size),
        width=int(t.width),
        heads=int(t.heads),
        layers=int(t.depth),
        mlp_ratio=t.mlp_dim / t.width,
        no_causal_mask=not t.get("causal", True),
        pool_type=pool,
        eos_id=int(t.get("eos_id", EOS_ID)),
        pad_id=0 if pad_id is None else int(pad_id),  # read only for padding masks CLIP lacks
        proj_bias=t.get("proj", "linear") == "linear_bias",
        norm_kwargs=norm,
        act_kwargs=act_kwargs,
        hf_tokenizer_name=tokenizer_dir_name,
    )
    model_cfg = dict(
        embed_dim=int(m.embed_dim),
        quick_gelu=act == "quick_gelu",
        init_logit_scale=float(math.log(m.scale_init)),
        vision_cfg={k: v for k, v in vision.items() if v is not None},
        text_cfg={k: v for k, v in text.items() if v is not None},
    )
    if m.get("bias_init") is not None:
        model_cfg["init_logit_bias"] = float(m.bias_init)
    preprocess_cfg = dict(
        size=int(i.image_size),
        mode="RGB",
        mean=list(IMAGE_MEAN),
        std=list(IMAGE_STD),
        interpolation="bicubic",
        resize_mode="shortest",
    )
    return dict(model_cfg=model_cfg, preprocess_cfg=preprocess_cfg)


def _refuse_unknown(name, cfg, known, problems):
    for k in sorted(set(cfg) - known):
        problems.append(f"  {name}.{k}={cfg[k]!r} (no vljax equivalent)")


def _activation(model_cfg, problems):
    if model_cfg.get("quick_gelu", False):
        return "quick_gelu"
    kinds = set()
    for tower in ("vision_cfg", "text_cfg"):
        kw = model_cfg[tower].get("act_kwargs") or {}
        approximate = kw.get("approximate", "none")
        if set(kw) - {"approximate"} or approximate not in ("none", "tanh"):
            problems.append(f"  {tower}.act_kwargs={kw!r} (vljax has gelu and gelu_tanh)")
        kinds.add("gelu_tanh" if approximate == "tanh" else "gelu")
    if len(kinds) > 1:
        problems.append("  act_kwargs differ between the towers (vljax has one model.activation)")
    return kinds.pop() if len(kinds) == 1 else "gelu"


def _ln_eps(model_cfg, problems):
    eps = {float((model_cfg[t].get("norm_kwargs") or {}).get("eps", 1e-5))
           for t in ("vision_cfg", "text_cfg")}  # fmt: skip
    if len(eps) > 1:
        problems.append(f"  norm_kwargs eps differ between the towers {sorted(eps)} "
                        "(vljax has one model.ln_eps)")  # fmt: skip
    return eps.pop() if len(eps) == 1 else 1e-5


def vljax_model_config(model_cfg):
    """open_clip `model_cfg` (a dict) -> vljax `config.model` (ConfigDict); ExportError listing
    every setting vljax's towers cannot express."""
    problems = []
    _refuse_unknown("model_cfg", model_cfg, _TOP_KEYS, problems)
    if problems:  # timm / HF text towers, CoCa, custom_text: nothing below applies
        raise ExportError(
            "this open_clip model is not a plain CLIP vljax can import:\n" + "\n".join(problems)
        )
    vc, tc = dict(model_cfg["vision_cfg"]), dict(model_cfg["text_cfg"])
    _refuse_unknown("vision_cfg", vc, _VISION_KEYS, problems)
    _refuse_unknown("text_cfg", tc, _TEXT_KEYS, problems)
    if isinstance(vc.get("layers", 12), list | tuple):
        problems.append("  vision_cfg.layers is a list (a ResNet tower; vljax has ViTs only)")
    if vc.get("pool_type", "tok") != "tok":
        problems.append(f"  vision_cfg.pool_type={vc['pool_type']!r} (vljax needs 'tok')")
    if tc.get("proj_type", "linear") != "linear":
        problems.append(f"  text_cfg.proj_type={tc['proj_type']!r} (vljax needs 'linear')")
    pool = tc.get("pool_type", "argmax")
    if pool not in ("argmax", "eos", "first", "last"):
        problems.append(f"  text_cfg.pool_type={pool!r} (vljax pools eos, first or last)")
    activation = _activation(model_cfg, problems)
    ln_eps = _ln_eps(model_cfg, problems)
    if problems:
        raise ExportError(
            "this open_clip model cannot be imported into vljax:\n" + "\n".join(problems)
        )
    v_width, t_width = int(vc.get("width", 768)), int(tc.get("width", 512))
    vocab = int(tc.get("vocab_size", 49408))
    m = ml_collections.ConfigDict()
    m.embed_dim = int(model_cfg["embed_dim"])
    m.activation = activation
    m.ln_eps = ln_eps
    m.dtype = "float32"
    m.remat = False
    m.scan = False
    m.image = ml_collections.ConfigDict(
        dict(
            image_size=int(vc.get("image_size", 224)),
            patch_size=int(vc.get("patch_size", 16)),
            width=v_width,
            depth=int(vc.get("layers", 12)),
            heads=v_width // int(vc.get("head_width", 64)),
            mlp_dim=int(v_width * float(vc.get("mlp_ratio", 4.0))),
            pool="cls",
            posemb="learn",
            pre_norm=not vc.get("no_ln_pre", False),
            proj="linear",
            stem="patch",
        )
    )
    m.text = ml_collections.ConfigDict(
        dict(
            vocab_size=vocab,
            max_len=int(tc.get("context_length", 77)),
            width=t_width,
            depth=int(tc.get("layers", 12)),
            heads=int(tc.get("heads", 8)),
            mlp_dim=int(t_width * float(tc.get("mlp_ratio", 4.0))),
            causal=not tc.get("no_causal_mask", False),
            # "argmax" pools at the largest id: OpenAI's vocab ends with its EOT token, so that
            # is the first EOS with eos_id = vocab_size - 1.
            pool="eos" if pool in ("argmax", "eos") else pool,
            proj="linear_bias" if tc.get("proj_bias", False) else "linear",
            eos_id=vocab - 1 if pool == "argmax" else int(tc.get("eos_id", 2)),
            # open_clip's CLIP has no padding mask: neither has the imported model.
            pad_id=None,
        )
    )
    # Initial values only: the imported log_scale / bias params carry the trained ones.
    m.scale_init = float(math.exp(model_cfg.get("init_logit_scale", math.log(1 / 0.07))))
    bias = model_cfg.get("init_logit_bias")
    m.bias_init = None if bias is None else float(bias)
    return m
