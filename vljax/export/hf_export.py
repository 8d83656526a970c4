"""`vljax export --format hf`: a run -> a transformers CLIPModel / SiglipModel folder.

The folder loads with `AutoModel`, `AutoProcessor` and `AutoTokenizer.from_pretrained(OUT)`:
config.json, model.safetensors, tokenizer.json (+ spiece.model), preprocessor_config.json and
a README model card.
"""

import json
import os
import shutil

import flax.linen as nn
import jax
import ml_dtypes
import numpy as np

from vljax.errors import ExportError
from vljax.export.hf_config import hf_config_dict, hf_family
from vljax.export.hf_tokenizer import TOKENIZER_FILES, write_hf_tokenizer
from vljax.export.mapping import CLIP, to_hf_state_dict
from vljax.export.processor import write_preprocessor_config
from vljax.methods import get_method
from vljax.models import unstack_layers
from vljax.models.vit import posemb_sincos_2d
from vljax.train.checkpoint import load_run


def image_posemb(params_img, image_config):
    """The `[tokens, width]` position embedding the image tower adds (cls row first)."""
    if image_config.get("posemb", "learn") == "learn":
        return np.asarray(params_img["pos_embedding"])[0]

    g = image_config.image_size // image_config.patch_size
    pe = posemb_sincos_2d(g, g, image_config.width)
    if image_config.get("pool") == "cls":
        pe = np.concatenate([np.zeros((1, pe.shape[1]), np.float32), pe])
    return pe


def host_params(params):
    """Any param tree (boxed, scanned, jax arrays) -> unstacked numpy nested dicts."""
    params = nn.unbox(params)
    params = jax.tree.map(np.asarray, params)
    to_dict = lambda t: {k: to_dict(v) for k, v in t.items()} if hasattr(t, "items") else t
    return unstack_layers(to_dict(params))


def save_state_dict(sd, path, dtype="float32"):
    """A torch-layout state dict (numpy, float32) as safetensors, cast to bf16 if asked."""
    from safetensors.numpy import save_file

    if dtype not in ("float32", "bfloat16", "bf16", "fp32"):
        raise ValueError(f"--dtype {dtype!r}: expected fp32 | bf16")
    if dtype in ("bfloat16", "bf16"):
        sd = {k: v.astype(ml_dtypes.bfloat16) for k, v in sd.items()}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(sd, path, metadata={"format": "pt"})


def export_params(
    config, params, tokenizer_path, out_dir, dtype="float32", eval_results=None, step=None
):
    """Writes the HF folder for a run config + params; returns the family (clip | siglip)."""
    family = hf_family(config)  # raises ExportError naming incompatible fields
    p = host_params(params)
    sd = to_hf_state_dict(p, family, image_posemb(p["img"], config.model.image))
    save_state_dict(sd, os.path.join(out_dir, "model.safetensors"), dtype)

    cfg = hf_config_dict(config, family)
    cfg["dtype"] = "bfloat16" if dtype in ("bfloat16", "bf16") else "float32"
    _write_transformers_config(cfg, out_dir)

    write_tokenizer(tokenizer_path, out_dir, config.model.text)
    write_preprocessor_config(out_dir, config.model.image.image_size, family)
    _write_model_card(out_dir, config, family, eval_results, step)
    return family


def write_tokenizer(tokenizer_path, out_dir, text_config):
    """The run's tokenizer as transformers tokenizer files in out_dir (same ids as vljax)."""
    if tokenizer_path is None:
        raise ValueError("the run has no tokenizer file; export needs its SentencePiece model")
    if str(tokenizer_path).endswith(".model"):
        write_hf_tokenizer(tokenizer_path, out_dir, text_config.max_len)
    else:  # an imported HF tokenizer: copy it as it is
        _copy_hf_tokenizer(tokenizer_path, out_dir)
    if text_config.get("pad_id", 0) is None:
        # The model attends to padding (trained without a mask): don't hand transformers one.
        _update_json(os.path.join(out_dir, "tokenizer_config.json"),
                     model_input_names=["input_ids"])  # fmt: skip


def load_exportable_run(workdir, step, fmt):
    """(LoadedRun, eval.json or None) of a run whose method supports `--format fmt`; other
    methods are refused in one line."""
    run = load_run(workdir, step)
    method = get_method(run.config.method)
    if fmt not in method.export_formats:
        supported = ", ".join(method.export_formats) or "none"
        raise ExportError(
            f"method {method.name!r} cannot be exported as --format {fmt} "
            f"(it supports: {supported})"
        )
    eval_results = None
    eval_path = os.path.join(workdir, "eval.json")
    if os.path.exists(eval_path):
        with open(eval_path) as f:
            eval_results = json.load(f)
    return run, eval_results


def export_run(workdir, out_dir, step=None, dtype="float32", fmt="hf"):
    """Writes the run's checkpoint (default: the newest that restores) into out_dir as a
    transformers folder; a method that cannot be exported as `fmt` is refused in one line."""
    run, eval_results = load_exportable_run(workdir, step, fmt)
    family = export_params(
        run.config, run.params, run.tokenizer_path, out_dir, dtype, eval_results, run.step
    )
    return family, run.step


def _write_transformers_config(cfg, out_dir):
    from transformers import CLIPConfig, SiglipConfig

    cfg = dict(cfg)
    cls = CLIPConfig if cfg.pop("model_type") == "clip" else SiglipConfig
    archs = cfg.pop("architectures")
    dtype = cfg.pop("dtype")
    hf = cls(**cfg)
    hf.architectures = archs
    hf.dtype = dtype
    hf.save_pretrained(out_dir)


def _update_json(path, **kv):
    with open(path) as f:
        d = json.load(f)
    d.update(kv)
    with open(path, "w") as f:
        json.dump(d, f, indent=2, ensure_ascii=False)


def _copy_hf_tokenizer(src, out_dir):
    folder = src if os.path.isdir(src) else os.path.dirname(src)
    copied = False
    for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(folder, name)):
            shutil.copyfile(os.path.join(folder, name), os.path.join(out_dir, name))
            copied = True
    if not copied:
        raise FileNotFoundError(f"no tokenizer files found in {folder}")


def _write_model_card(out_dir, config, family, eval_results, step=None):
    name = "CLIPModel" if family == CLIP else "SiglipModel"
    m = config.model
    lines = [
        "---",
        "library_name: transformers",
        "tags: [vljax, "
        + ("clip" if family == CLIP else "siglip")
        + ", zero-shot-image-classification]",
        "---",
        "",
        f"# vljax {name} export",
        "",
        f"Trained with vljax ({config.loss.kind} loss) and exported as a transformers `{name}`"
        + (f" from checkpoint step {step}." if step is not None else "."),
        f"Image tower ViT width {m.image.width}, depth {m.image.depth}, patch "
        f"{m.image.patch_size}, {m.image.image_size}px; text tower width {m.text.width}, "
        f"depth {m.text.depth}, context {m.text.max_len}; embedding {m.embed_dim}.",
        "",
        "## Usage",
        "",
        "```python",
        "from transformers import AutoModel, AutoProcessor",
        "model = AutoModel.from_pretrained(PATH)",
        "# with torchvision installed, pass backend='pil' for vljax's exact pixels",
        "processor = AutoProcessor.from_pretrained(PATH)",
        "inputs = processor(text=texts, images=images, padding='max_length', truncation=True,",
        "                   return_tensors='pt')",
        "zimg = model.get_image_features(pixel_values=inputs['pixel_values']).pooler_output",
        "ztxt = model.get_text_features(input_ids=inputs['input_ids'],",
        "                               attention_mask=inputs.get('attention_mask')).pooler_output",
        "```",
        "",
        "Texts must be padded to the full context (`padding='max_length'`) and truncated, as in",
        "training; the tokenizer appends EOS and pads with id 0.",
        "",
    ]
    if eval_results:
        lines += ["## Evaluation", "", "| metric | value |", "| --- | --- |"]
        for k, v in eval_results.items():
            lines.append(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |")
        lines.append("")
    lines += [
        "## Training config",
        "",
        "```json",
        json.dumps(config.to_dict(), indent=2, default=str),
        "```",
        "",
    ]
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write("\n".join(lines))
