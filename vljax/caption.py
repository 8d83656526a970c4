"""`vljax caption --workdir DIR --images PATHS...`: greedy captions from a run whose method
has a caption head (CoCa), one `path<TAB>caption` line per readable image. Unreadable files
are skipped, named and counted on stderr."""

import argparse
import sys

from PIL import UnidentifiedImageError

from vljax.data.preprocess import inference_image
from vljax.errors import DataError
from vljax.inference import load_run_encoder


def read_images(paths, size: int):
    """-> (uint8 images, their paths, [(path, why) skipped])."""
    images, kept, skipped = [], [], []
    for path in paths:
        try:
            with open(path, "rb") as f:
                images.append(inference_image(f.read(), size))
            kept.append(path)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            skipped.append((path, f"{type(e).__name__}: {e}"))
    return images, kept, skipped


def cli(argv) -> int:
    parser = argparse.ArgumentParser(prog="vljax caption")
    parser.add_argument("--workdir", required=True, help="a run of a captioning method")
    parser.add_argument("--step", type=int, default=None, help="checkpoint (default: latest)")
    parser.add_argument("--images", nargs="+", required=True, help="image files")
    args = parser.parse_args(argv)
    encoder = load_run_encoder(args.workdir, args.step)
    images, paths, skipped = read_images(args.images, encoder.model_config.image.image_size)
    for path, why in skipped:
        print(f"vljax caption: skipped {path}: {why}", file=sys.stderr)
    if skipped:
        print(f"vljax caption: {len(skipped)} unreadable image(s) skipped", file=sys.stderr)
    if not images:
        raise DataError("none of the --images could be read as an image")
    for path, caption in zip(paths, encoder.caption(images), strict=True):
        print(f"{path}\t{caption}")
    return 0
