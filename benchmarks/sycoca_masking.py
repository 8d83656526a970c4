"""SyCoCa's attentive masking: how often a masked patch lies on a shape the caption describes.

    python benchmarks/sycoca_masking.py [--workdir runs/sycoca] [--images 256] [--write]

For a trained SyCoCa run (configs/sycoca.py) and the first `--images` scenes of the shapes
retrieval split (the eval seed; 1 or 2 shapes, every one named in the caption), masks each
image as in training (`model.mim.ratio` of the patches), once with attentive masking (the
patches the caption attends to most) and once with random masking, and reports the fraction
of masked patches that overlap a shape's box (`ShapesSource.scene(i)["boxes"]`: centre and
side in pixels; a patch overlaps when the two squares share a positive area), averaged over
the images. `on_shapes_all` is the fraction of all patches that overlap a box: what random
masking gets in expectation. `--write` records the row in docs/benchmarks.md ("SyCoCa
attentive masking").
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.report import upsert_row  # noqa: E402
from benchmarks.train_step import machine_name  # noqa: E402
from vljax.data.evalsets import EVAL_SEED  # noqa: E402
from vljax.data.preprocess import normalize  # noqa: E402
from vljax.data.shapes import ShapesSource  # noqa: E402
from vljax.inference import load_run_encoder  # noqa: E402

SECTION = "SyCoCa attentive masking"
BATCH = 64


def patch_overlaps(boxes, image_size: int, patch_size: int):
    """bool [patches] (row-major): which patches share a positive area with any box."""
    grid = image_size // patch_size
    out = np.zeros((grid, grid), bool)
    lo = np.arange(grid) * patch_size
    hi = lo + patch_size
    for cx, cy, side in boxes:
        x0, x1, y0, y1 = cx - side / 2, cx + side / 2, cy - side / 2, cy + side / 2
        cols = np.minimum(hi, x1) > np.maximum(lo, x0)
        rows = np.minimum(hi, y1) > np.maximum(lo, y0)
        out |= rows[:, None] & cols[None, :]
    return out.reshape(-1)


def masked_indices(encoder, model_config, masking, pixels, tokens, seed=0):
    """int [N, M]: the patches SyCoCa masks in training under `masking`."""
    cfg = ml_collections.ConfigDict(model_config.to_dict())
    cfg.mim.masking = masking
    model = encoder.method.build_model(cfg)

    @jax.jit
    def index(params, batch, key):
        out = model.apply({"params": params}, batch, train=True, rngs={"mask": key})
        return out["mim/index"]

    rows = []
    for start in range(0, len(pixels), BATCH):
        batch = {"image": pixels[start : start + BATCH], "tokens": tokens[start : start + BATCH]}
        key = jax.random.fold_in(jax.random.key(seed), start)
        rows.append(np.asarray(index(encoder.params, batch, key)))
    return np.concatenate(rows)


def _run_name(workdir: str) -> str:
    """The run directory relative to the repository (runs/sycoca), else its absolute path."""
    path = os.path.abspath(workdir)
    inside = os.path.commonpath([path, ROOT]) == ROOT
    return os.path.relpath(path, ROOT) if inside else path


def measure(workdir: str, images: int = 256, seed: int = 0) -> dict:

    encoder = load_run_encoder(workdir)
    if encoder.method.name != "sycoca":
        raise SystemExit(f"{workdir} is a {encoder.method.name!r} run; this needs a SyCoCa one")
    mc = encoder.model_config
    size, patch = mc.image.image_size, mc.image.patch_size
    source = ShapesSource("retrieval", seed=EVAL_SEED, image_size=size)
    n = min(images, len(source))
    examples = [source[i] for i in range(n)]
    pixels = normalize(np.stack([ex["image"] for ex in examples]))
    captions = [ex["captions"]["en"] for ex in examples]
    tokens = np.asarray(encoder.tokenizer.encode(captions, mc.text.max_len), np.int32)
    on_shape = np.stack([patch_overlaps(source.scene(i)["boxes"], size, patch) for i in range(n)])

    fractions = {}
    for masking in ("attentive", "random"):
        index = masked_indices(encoder, mc, masking, pixels, tokens, seed)
        hits = np.take_along_axis(on_shape, index, axis=1)
        fractions[masking] = float(hits.mean())  # every image masks the same number
    return dict(
        run=_run_name(workdir),
        step=encoder.step,
        images=n,
        patches=int(on_shape.shape[1]),
        masked=int(index.shape[1]),
        on_shapes_attentive=fractions["attentive"],
        on_shapes_random=fractions["random"],
        on_shapes_all=float(on_shape.mean()),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=os.path.join("runs", "sycoca"))
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0, help="random masking's key")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)

    row = measure(args.workdir, args.images, args.seed)
    row["machine"] = machine_name()
    print(row)
    if args.write:
        note = (
            "`python benchmarks/sycoca_masking.py --write`: on the first shapes retrieval "
            "scenes, the fraction of the patches SyCoCa masks in training that overlap a "
            "shape named in the caption: attentive masking (the patches the caption attends "
            "to most, in the contrastive space) against random masking; `on_shapes_all` is "
            "the fraction of all patches on a shape (random's expectation)."
        )
        upsert_row(SECTION, row, key=("run", "step", "images", "machine"), note=note)
    return row


if __name__ == "__main__":
    main()
