"""`vljax import --open-clip DIR`: an open_clip `CLIP` folder -> vljax params + config.model.

DIR is what `vljax export --format open_clip` writes or any folder open_clip's
`create_model('local-dir:DIR')` reads: open_clip_config.json (`model_cfg`) and the weights as
safetensors (pickled .bin / .pth files are refused with the conversion command).
"""

import json
import os

from vljax.errors import ExportError
from vljax.export.hf_import import (
    ImportedCheckpoint,
    check_shapes,
    read_safetensors,
    refuse_unused,
    to_float32,
)
from vljax.export.open_clip_config import vljax_model_config
from vljax.export.open_clip_export import CONFIG_NAME, FORMAT, WEIGHTS_NAME
from vljax.export.open_clip_mapping import from_open_clip_state_dict, to_open_clip_state_dict

# The safetensors names open_clip's local-dir loader prefers, in its order (factory.py).
_WEIGHT_FILES = (WEIGHTS_NAME, "open_clip_pytorch_model.safetensors", "model.safetensors")
_PICKLES = ("open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth", "pytorch_model.bin")


def _weights_file(path):
    for name in _WEIGHT_FILES:
        if os.path.exists(os.path.join(path, name)):
            return os.path.join(path, name)
    pickled = [x for x in _PICKLES if os.path.exists(os.path.join(path, x))]
    hint = (
        f" It has {pickled[0]} (a pickle), which vljax does not load: convert it once with "
        "`safetensors.torch.save_file(torch.load(FILE, weights_only=True), "
        f"'{os.path.join(path, WEIGHTS_NAME)}')`."
        if pickled
        else ""
    )
    raise FileNotFoundError(f"{path} has no {WEIGHTS_NAME}.{hint}")


def import_open_clip_folder(path):
    """Reads an open_clip folder into vljax params (an ImportedCheckpoint, family open_clip)."""
    cfg_file = os.path.join(path, CONFIG_NAME)
    if not os.path.isfile(cfg_file):
        raise FileNotFoundError(
            f"{path} is not an open_clip model folder (no {CONFIG_NAME}); pass the directory "
            "that `vljax export --format open_clip` wrote or that open_clip loads as local-dir:"
        )
    with open(cfg_file) as f:
        model_cfg = json.load(f).get("model_cfg")
    if not isinstance(model_cfg, dict):
        raise ExportError(f"{cfg_file} has no 'model_cfg' object")
    mcfg = vljax_model_config(model_cfg)
    sd = read_safetensors(_weights_file(path))
    try:
        params = from_open_clip_state_dict(sd, mcfg)
    except KeyError as e:
        raise ExportError(f"{path}: {e.args[0]} (the weights do not match {CONFIG_NAME})") from e
    used = set(to_open_clip_state_dict(params, params["img"]["pos_embedding"][0]))
    refuse_unused(path, sd, used, "CLIP")
    params = to_float32(params)
    check_shapes(params, mcfg)
    return ImportedCheckpoint(FORMAT, mcfg, params, sd)
