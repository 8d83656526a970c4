"""The exported image processor: HF `CLIPImageProcessor` settings equal to vljax inference.

vljax's inference preprocessing (`vljax.data.preprocess.inference_image` + `normalize`):
RGB, resize the shorter side to `image_size` with PIL bicubic (long side truncated), centre
crop, `x / 127.5 - 1`. transformers' PIL-backend CLIPImageProcessor does the same with the
settings below (mean = std = 0.5 after `x / 255`), so pixels agree exactly and model inputs
to float rounding. With torchvision installed, transformers defaults to its torchvision
backend, whose bicubic differs in rounding: pass `backend="pil"` for exact parity.
"""

import json
import os

PROCESSOR_CLASSES = {"clip": "CLIPProcessor", "siglip": "SiglipProcessor"}


def preprocessor_config(image_size, family):
    return dict(
        image_processor_type="CLIPImageProcessor",
        processor_class=PROCESSOR_CLASSES[family],
        do_convert_rgb=True,
        do_resize=True,
        size={"shortest_edge": int(image_size)},
        resample=3,  # PIL.Image.BICUBIC
        do_center_crop=True,
        crop_size={"height": int(image_size), "width": int(image_size)},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def write_preprocessor_config(out_dir, image_size, family):
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor_config(image_size, family), f, indent=2)
