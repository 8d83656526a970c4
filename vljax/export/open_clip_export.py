"""`vljax export --format open_clip`: a run -> a folder open_clip loads as a `CLIP`.

    model, _, preprocess = open_clip.create_model_and_transforms("local-dir:OUT")
    tokenizer = open_clip.get_tokenizer("local-dir:OUT")

OUT holds open_clip_config.json (`model_cfg` + `preprocess_cfg`), open_clip_model.safetensors,
the run's tokenizer as transformers files (open_clip's `HFTokenizer` reads them from OUT) and a
README.md.
"""

import json
import os

from vljax.export.hf_export import (
    host_params,
    image_posemb,
    load_exportable_run,
    save_state_dict,
    write_tokenizer,
)
from vljax.export.open_clip_config import check_open_clip_exportable, open_clip_config
from vljax.export.open_clip_mapping import to_open_clip_state_dict

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
FORMAT = "open_clip"
# Any non-empty text_cfg.hf_tokenizer_name makes open_clip's get_tokenizer("local-dir:OUT")
# read an HFTokenizer from OUT itself; the name says where the files came from.
TOKENIZER_NAME = "vljax-sentencepiece"


def export_open_clip_params(config, params, tokenizer_path, out_dir, dtype="float32", step=None):
    """Writes the open_clip folder for a run config + params."""
    check_open_clip_exportable(config)  # before any file: ExportError naming the fields
    p = host_params(params)
    sd = to_open_clip_state_dict(p, image_posemb(p["img"], config.model.image))
    save_state_dict(sd, os.path.join(out_dir, WEIGHTS_NAME), dtype)
    with open(os.path.join(out_dir, CONFIG_NAME), "w") as f:
        json.dump(open_clip_config(config, TOKENIZER_NAME), f, indent=2)
    write_tokenizer(tokenizer_path, out_dir, config.model.text)
    _write_readme(out_dir, config, step)


def export_open_clip_run(workdir, out_dir, step=None, dtype="float32"):
    """Writes the run's checkpoint (default: the newest that restores) as an open_clip folder;
    returns the step."""
    run, _ = load_exportable_run(workdir, step, FORMAT)
    export_open_clip_params(run.config, run.params, run.tokenizer_path, out_dir, dtype, run.step)
    return run.step


def _write_readme(out_dir, config, step):
    m = config.model
    lines = [
        "# vljax export for open_clip",
        "",
        f"A vljax run{f' (step {step})' if step is not None else ''} as an open_clip `CLIP`: "
        f"ViT width {m.image.width}, depth {m.image.depth}, patch {m.image.patch_size}, "
        f"{m.image.image_size}px; text width {m.text.width}, depth {m.text.depth}, context "
        f"{m.text.max_len}; embedding {m.embed_dim}.",
        "",
        "```python",
        "import open_clip",
        "model, _, preprocess = open_clip.create_model_and_transforms('local-dir:PATH')",
        "tokenizer = open_clip.get_tokenizer('local-dir:PATH')",
        "zimg = model.encode_image(preprocess(image)[None], normalize=True)",
        "ztxt = model.encode_text(tokenizer(texts), normalize=True)",
        "```",
        "",
        "The tokenizer is the run's SentencePiece model as transformers files (open_clip's",
        "`HFTokenizer`); open_clip cleans each text first (ftfy, HTML unescaping, whitespace),",
        "so texts with HTML entities or curly quotes may get other ids than in vljax:",
        "`tokenizer.tokenizer(texts, padding='max_length', truncation=True,",
        "max_length=CONTEXT)` gives vljax's ids exactly.",
        "",
    ]
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write("\n".join(lines))
