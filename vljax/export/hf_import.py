"""`vljax import --hf PATH`: a transformers CLIP / SigLIP folder -> vljax params + config.

Reads safetensors only (never pickle). The vljax architecture is derived from the HF config;
a user config that disagrees is reported field by field, and params whose shapes differ from
what the config builds are reported by name and shape.
"""

import dataclasses
import json
import os

import flax.linen as nn
import ml_collections
import numpy as np

from vljax.export.hf_config import ExportError, vljax_model_config
from vljax.export.mapping import from_hf_state_dict, to_hf_state_dict
from vljax.export.remote_code import refuse_remote_code
from vljax.methods import clip
from vljax.params_io import shape_mismatches, shapes_of
from vljax.train.state import abstract_boxed_params, boxed_params_init

# Buffers transformers may save that carry no weights.
_IGNORED_SUFFIXES = ("position_ids",)


@dataclasses.dataclass
class ImportedCheckpoint:
    family: str  # clip | siglip
    model_config: object  # ml_collections.ConfigDict for config.model
    params: dict  # unstacked numpy tree (encoderblock_{i})
    hf_state_dict: dict


def read_safetensors(path):
    """{name: float32 numpy} from a safetensors file (any float dtype, bf16 included)."""
    from safetensors import safe_open

    out = {}
    with safe_open(path, framework="pt") as f:
        for k in f.keys():
            t = f.get_tensor(k)
            out[k] = t.float().numpy() if t.is_floating_point() else t.numpy()
    return out


def _state_dict_files(path):
    index = os.path.join(path, "model.safetensors.index.json")
    single = os.path.join(path, "model.safetensors")
    if os.path.exists(single):
        return [single]
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        return [os.path.join(path, x) for x in files]
    pickled = [
        x for x in ("pytorch_model.bin", "model.bin") if os.path.exists(os.path.join(path, x))
    ]
    hint = (
        f" It has {pickled[0]} (a pickle), which vljax does not load: convert it once with "
        "`AutoModel.from_pretrained(PATH).save_pretrained(PATH, safe_serialization=True)`."
        if pickled
        else ""
    )
    raise FileNotFoundError(f"{path} has no model.safetensors.{hint}")


def import_hf_folder(path):
    """Reads a transformers CLIPModel / SiglipModel folder into vljax params."""
    if not os.path.isdir(path) or not os.path.exists(os.path.join(path, "config.json")):
        raise FileNotFoundError(
            f"{path} is not a Hugging Face model folder (no config.json); pass the directory "
            "that `save_pretrained` wrote"
        )
    from transformers import AutoConfig

    refuse_remote_code(path)
    hf_config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    family, mcfg = vljax_model_config(hf_config)
    sd = {}
    for file in _state_dict_files(path):
        sd.update(read_safetensors(file))
    sd = {k.removeprefix("model."): v for k, v in sd.items()}
    try:
        params = from_hf_state_dict(
            sd,
            family,
            mcfg.image.depth,
            mcfg.image.heads,
            mcfg.text.depth,
            mcfg.text.heads,
        )
    except KeyError as e:
        raise ExportError(f"{path}: {e.args[0]} (config.json says model_type={family})") from e
    used = set(to_hf_state_dict(params, family, params["img"]["pos_embedding"][0]))
    refuse_unused(path, [k for k in sd if not k.endswith(_IGNORED_SUFFIXES)], used, family)
    params = to_float32(params)
    check_shapes(params, mcfg)
    return ImportedCheckpoint(family, mcfg, params, sd)


def refuse_unused(path: str, names, used, model: str):
    """Stops an import whose checkpoint holds tensors (`names`) that the vljax `model` it maps
    to has no place for (`used`: the names the model's own params would export to)."""
    unused = sorted(set(names) - set(used))
    if unused:
        raise ExportError(
            f"{path}: tensors vljax's {model} model has no place for: {unused[:10]}"
            + (" ..." if len(unused) > 10 else "")
        )


def to_float32(tree):
    if isinstance(tree, dict):
        return {k: to_float32(v) for k, v in tree.items()}
    return np.asarray(tree, np.float32)


def check_shapes(params, model_config):
    """Raises ExportError listing every param whose name or shape differs from the model's."""
    # Checkpoints are compared unstacked: build the unscanned twin of the model.
    model_config = ml_collections.ConfigDict(model_config.to_dict())
    model_config.scan = False
    model = clip.build_model(model_config)
    abstract = abstract_boxed_params(boxed_params_init(clip.METHOD, model, model_config))
    problems = shape_mismatches(shapes_of(nn.unbox(abstract)), shapes_of(params))
    if problems:
        raise ExportError(
            "the config's model does not match the checkpoint:\n  " + "\n  ".join(problems)
        )
