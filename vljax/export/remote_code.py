"""vljax loads only transformers' built-in CLIP and SigLIP code, never a folder's own Python:
every `from_pretrained` passes `trust_remote_code=False`, and a folder that asks for remote
code (`auto_map` in its config.json or tokenizer_config.json) is refused up front, so that
transformers never prompts "run the custom code? [y/N]"."""

import json
import os

from vljax.errors import ExportError

CONFIG_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json")


def refuse_remote_code(folder: str):
    for name in CONFIG_FILES:
        path = os.path.join(folder, name)
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "auto_map" in data:
            raise ExportError(
                f"{path} asks for custom code (auto_map); vljax loads only the built-in "
                "transformers CLIPModel and SiglipModel and never runs a folder's own code"
            )
