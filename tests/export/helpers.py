"""Helpers shared by the export tests: captions, tiny CLIP-/SigLIP-style configs, probes."""

import importlib
import importlib.util
import os
import random
import sys

import jax
import numpy as np

from configs import demo
from tests.random_params import random_variables
from vljax.methods import clip


class LazyModule:
    """A module imported at its first attribute access. torch and transformers take about
    7 s to import, and every pytest worker imports every test module when it collects,
    whether or not it runs the export tests."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        # pytest's collection probes every module-level name for private attributes (a mock's
        # `_mock_name`, `__wrapped__`): those must not import the module.
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._name), attr)


torch = LazyModule("torch")
transformers = LazyModule("transformers")

# open_clip imports torchvision when it is imported; machines without a CPU torchvision wheel
# get the tests' stand-in (torchvision_stub/: records the preprocessing it is asked to build).
TORCHVISION_STUB = os.path.join(os.path.dirname(__file__), "torchvision_stub")


def import_open_clip():
    """open_clip (the real package), with the torchvision stand-in when torchvision is missing."""
    if importlib.util.find_spec("torchvision") is None and TORCHVISION_STUB not in sys.path:
        sys.path.insert(0, TORCHVISION_STUB)
    return importlib.import_module("open_clip")


CHARS_ZH = "红色的圆形绿色正方形蓝三角一个黄星紫橙大小左右上下在旁边"


def captions(n=2000, seed=0):
    rnd = random.Random(seed)
    colors = ["red", "green", "blue", "yellow", "purple", "orange", "Big", "small"]
    shapes = ["circle", "square", "triangle", "star", "hexagon"]
    word = lambda: "".join(
        rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 8))
    )
    en = [
        f"a {rnd.choice(colors)} {rnd.choice(shapes)} {word()} {word()}, at {rnd.randint(0, 99)}!"
        for _ in range(n)
    ]
    zh = ["".join(rnd.choice(CHARS_ZH) for _ in range(8)) for _ in range(n // 3)]
    return en + zh


def tiny_config(family, vocab_size):
    """demo.py shrunk further and switched to a CLIP- or SigLIP-style architecture."""
    c = demo.get_config("sigmoid" if family == "siglip" else None)
    m = c.model
    m.image.update(
        image_size=32, patch_size=8, width=32, depth=2, heads=4, mlp_dim=64, stem="patch"
    )
    m.text.update(vocab_size=vocab_size, max_len=16, width=32, depth=2, heads=4, mlp_dim=64)
    if family == "clip":
        m.embed_dim = 24
        m.image.update(pool="cls", posemb="sincos2d", pre_norm=True, proj="linear")
        m.text.update(causal=True, pool="eos", proj="linear")
        m.activation = "quick_gelu"
    else:
        m.embed_dim = 32
        m.image.update(pool="map", posemb="learn", pre_norm=False, proj="none")
        m.text.update(causal=False, pool="last", proj="linear_bias")
        m.activation = "gelu_tanh"
        m.ln_eps = 1e-6
    return c


def random_params(config, seed=0):
    """The model and random params of its shapes (tests/random_params.py: drawn on the host, so
    biases, norms and the conv bias are all non-trivial and nothing compiles)."""
    model = clip.build_model(config.model)
    variables = random_variables(model, clip.example_batch(config.model), seed=seed)
    return model, jax.tree.map(lambda x: np.asarray(x, np.float32), variables["params"])


TEXTS = [
    "a red circle",
    "a big green square to the left of a small blue star",
    "",
    "红色的圆形在左边",
    "一个大的绿色圆形在一个大的绿色十字形的上面",
    "a red circle " * 20,  # longer than the context
    "Mixed 红色 text, with punctuation!!",
]


def random_images(n=5, seed=0):
    rs = np.random.RandomState(seed)
    sizes = [(32, 32), (40, 31), (17, 64), (100, 90), (33, 300)]
    return [rs.randint(0, 256, sizes[k % len(sizes)] + (3,), dtype=np.uint8) for k in range(n)]
