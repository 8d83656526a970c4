"""`vljax export` and `vljax import` (dispatched from vljax/cli.py with their own argv)."""

import argparse
import os
import shutil

from vljax.config import ConfigError, build_config, parse_overrides, save_config
from vljax.errors import ExportError
from vljax.export.hf_export import export_run
from vljax.export.hf_import import check_shapes, import_hf_folder
from vljax.export.hf_tokenizer import SPIECE_NAME, TOKENIZER_FILES, is_vljax_export
from vljax.export.open_clip_export import export_open_clip_run
from vljax.export.open_clip_import import import_open_clip_folder
from vljax.export.safe_dir import atomic_folder, check_not_inside
from vljax.export.verify import verify_export
from vljax.inference import load_run_encoder
from vljax.models import stack_layers
from vljax.params_io import save_flat
from vljax.token_ids import EOS_ID, PAD_ID
from vljax.train.init_from import IMPORTED_PARAMS

# Architecture fields an imported checkpoint fixes; the rest of config.model (dtype, remat,
# scan) and everything outside it stay the user's choice.
ARCH_FIELDS = (
    ["embed_dim", "activation", "ln_eps"]
    + [
        f"image.{k}"
        for k in (
            "image_size",
            "patch_size",
            "width",
            "depth",
            "heads",
            "mlp_dim",
            "pool",
            "posemb",
            "stem",
            "pre_norm",
            "proj",
        )  # fmt: skip
    ]
    + [
        f"text.{k}"
        for k in (
            "vocab_size",
            "max_len",
            "width",
            "depth",
            "heads",
            "mlp_dim",
            "causal",
            "pool",
            "proj",
        )  # fmt: skip
    ]
)
# Token conventions of the checkpoint's tokenizer: set from the checkpoint, not compared.
TOKEN_FIELDS = ["text.eos_id", "text.pad_id"]
_DEFAULTS = {"image.pre_norm": False, "text.eos_id": EOS_ID, "text.pad_id": PAD_ID}


def export_cli(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="vljax export",
        description="Export a run as a Hugging Face transformers CLIPModel / SiglipModel folder "
        "(--format hf) or an open_clip CLIP folder (--format open_clip).",
    )
    p.add_argument("--workdir", required=True, help="the run directory (vljax train --workdir)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    p.add_argument("--format", default="hf", choices=["hf", "open_clip"], help="output format")
    p.add_argument("--out", required=True, help="output folder (outside the run)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out as a whole")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="saved weights")
    p.add_argument(
        "--verify",
        action="store_true",
        help="load OUT with transformers and compare its embeddings with vljax's on probes",
    )
    args = p.parse_args(argv)
    check_not_inside(args.out, args.workdir)
    if args.format == "open_clip":
        if args.verify:
            raise ExportError(
                "--verify checks transformers folders (--format hf); the open_clip export is "
                "checked by tests/export/test_open_clip.py. Drop --verify"
            )
        with atomic_folder(args.out, overwrite=args.overwrite) as tmp:
            step = export_open_clip_run(args.workdir, tmp, args.step, args.dtype)
        print(f"Exported {args.workdir} step {step} as an open_clip CLIP to {args.out}")
        print(f"  open_clip.create_model_and_transforms('local-dir:{args.out}');")
        print(f"  open_clip.get_tokenizer('local-dir:{args.out}')")
        return 0
    with atomic_folder(args.out, overwrite=args.overwrite) as tmp:
        family, step = export_run(args.workdir, tmp, args.step, args.dtype, args.format)
    name = "CLIPModel" if family == "clip" else "SiglipModel"
    print(f"Exported {args.workdir} step {step} as a transformers {name} to {args.out}")
    print(f"  AutoModel.from_pretrained({args.out!r}); AutoProcessor.from_pretrained(...)")
    if args.verify:
        res = verify_export(load_run_encoder(args.workdir, args.step), args.out)
        print(
            "verify (transformers vs vljax, max abs diff of L2-normalised embeddings): "
            f"images {res['image_max_abs_diff']:.2e}, texts {res['text_max_abs_diff']:.2e}, "
            f"token ids equal: {res['token_ids_equal']}"
        )
        tol = 1e-4 if args.dtype == "fp32" else 5e-2
        if (
            max(res["image_max_abs_diff"], res["text_max_abs_diff"]) > tol
            or not res["token_ids_equal"]
        ):
            raise ExportError(
                f"{args.out} was written but does not match the run (tolerance {tol}): {res}"
            )
    return 0


def _get(model_config, dotted):
    node = model_config
    *parents, last = dotted.split(".")
    for p in parents:
        node = node[p]
    value = node.get(last, _DEFAULTS.get(dotted))
    return value


def _set(model_config, dotted, value):
    node = model_config
    *parents, last = dotted.split(".")
    for p in parents:
        node = node[p]
    with node.unlocked() if hasattr(node, "unlocked") else _nullcontext():
        node[last] = value


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def architecture_mismatches(user_model_config, ckpt_model_config):
    """['model.image.width: config 768, checkpoint 1024', ...] for differing fields."""
    out = []
    for field in ARCH_FIELDS:
        want, got = _get(ckpt_model_config, field), _get(user_model_config, field)
        if isinstance(want, float) and isinstance(got, float | int):
            same = abs(want - got) <= 1e-12 * max(1.0, abs(want))
        else:
            same = want == got
        if not same:
            out.append(f"model.{field}: config {got!r}, checkpoint {want!r}")
    return out


def import_cli(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="vljax import",
        description="Initialise a vljax run from a transformers CLIP / SigLIP folder or an "
        "open_clip CLIP folder.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--hf", help="folder written by save_pretrained (safetensors)")
    src.add_argument(
        "--open-clip",
        dest="open_clip",
        help="open_clip folder (open_clip_config.json + safetensors), e.g. from "
        "`vljax export --format open_clip`",
    )
    p.add_argument("--config", required=True, help="configs/X.py[:arg] matching the checkpoint")
    p.add_argument("--workdir", required=True, help="the run directory to initialise")
    args, rest = p.parse_known_args(argv)
    overrides, unknown = parse_overrides(rest)
    if unknown:
        raise ConfigError(f"unknown arguments {unknown}; overrides look like --config.a.b=1")
    config = build_config(args.config, overrides)
    source = args.hf or args.open_clip
    ckpt = import_hf_folder(args.hf) if args.hf else import_open_clip_folder(args.open_clip)
    problems = architecture_mismatches(config.model, ckpt.model_config)
    if problems:
        fix = " ".join(
            f"--config.{x.split(':')[0]}={x.rsplit('checkpoint ', 1)[1]}" for x in problems
        )
        raise ExportError(
            f"the config's architecture does not match the {ckpt.family} checkpoint "
            f"{source}:\n  " + "\n  ".join(problems) + f"\nFix the config, e.g. {fix}"
        )
    for field in TOKEN_FIELDS:
        _set(config.model, field, _get(ckpt.model_config, field))
    check_shapes(ckpt.params, config.model)  # by param name and shape
    init_dir = os.path.abspath(os.path.join(args.workdir, "init"))
    params = stack_layers(ckpt.params) if config.model.get("scan") else ckpt.params
    # Written whole or not at all; a re-import replaces the previous init folder.
    with atomic_folder(init_dir, overwrite=True, refuse_runs=False) as tmp:
        save_flat(params, os.path.join(tmp, IMPORTED_PARAMS))
        tok_name = _copy_tokenizer(source, tmp)
        tok_path = None if tok_name is None else os.path.join(init_dir, tok_name)
        with config.unlocked():
            config.init_from = init_dir
            if tok_path is not None:
                config.tokenizer.model = tok_path
                config.tokenizer.vocab_size = config.model.text.vocab_size
        save_config(config, os.path.join(tmp, "config.json"))
    print(f"Imported {ckpt.family} checkpoint {source} into {init_dir}")
    if tok_path is None:
        print("  (the folder has no tokenizer: set --config.tokenizer.model yourself)")
    print("Train from it with:")
    cfg_json = os.path.join(init_dir, "config.json")
    print(
        f"  vljax train --config {cfg_json} --workdir {args.workdir} --config.init_from={init_dir}"
    )
    print("  (LiT, image tower locked: add --config.optimizer.frozen='[\"^img/\"]')")
    return 0


def _copy_tokenizer(hf_dir, init_dir):
    """The tokenizer the run should use, copied into init_dir: its name there (None if the
    folder has none).

    A vljax export carries its SentencePiece model -> `tokenizer.model` (vljax's Tokenizer).
    Other folders (OpenAI CLIP's BPE, SigLIP's SentencePiece) -> their tokenizer files, and
    the returned name is `tokenizer` (a folder), read by
    `vljax.export.hf_tokenizer.HFTokenizer` (transformers' own tokenizer).
    """
    if is_vljax_export(hf_dir):
        dst = os.path.join(init_dir, "tokenizer.model")
        shutil.copyfile(os.path.join(hf_dir, SPIECE_NAME), dst)
        return "tokenizer.model"
    present = [n for n in TOKENIZER_FILES if os.path.exists(os.path.join(hf_dir, n))]
    if not any(n in present for n in ("tokenizer.json", "vocab.json", SPIECE_NAME)):
        return None
    dst_dir = os.path.join(init_dir, "tokenizer")
    os.makedirs(dst_dir, exist_ok=True)
    for name in present:
        shutil.copyfile(os.path.join(hf_dir, name), os.path.join(dst_dir, name))
    return "tokenizer"
