"""M2-Encoder's bilingual objective (Guo et al. 2024, arXiv 2401.15896): every image is seen
with its English and its Chinese caption, through one tokenizer and one text tower (term
per_caption: the mean of the two pairwise contrastive losses); `:demo_grouped` adds
M2-Encoder's grouped aggregation (negatives only within groups of devices).

The quickstart's towers, data and steps (configs/demo.py:quickstart, what `make demo` trains:
within 10 minutes on the slowest 2-core kind with two captions per image), with 24 text
positions (the base demo's: room for the longer Chinese captions) and captions in both languages
(`data.train.lang = "en,zh"`, `data.train.multi_captions = "languages"`: K = 2 captions per
image). The tokenizer is trained on both languages' captions (512 pieces cover both, no
unknown piece). Evals: zero-shot and retrieval in each language, and R@1 per language with
their Mean Rank Variance (`retrieval/shapes/mrv`).

    vljax train --config configs/m2_encoder.py:demo --workdir runs/m2_encoder
    vljax train --config configs/m2_encoder.py:demo_grouped --workdir runs/m2_encoder_grouped
    vljax train --config configs/m2_encoder.py:tiny --workdir /tmp/m2_encoder   # a smoke run

`:demo_grouped` uses group_size 1 (one device per group), the one size that divides every
device count: on a one-device machine it is `:demo` itself; with P devices (e.g. CPU devices
made with XLA_FLAGS=--xla_force_host_platform_device_count=4) each image's negatives are the
B / P captions of its own device.
"""

import ml_collections

from configs import demo

LANGS = ("en", "zh")


def bilingual(c):
    """The multi-caption method on the demo's scenes, one caption per language, with the
    evals in each language (also used by configs/one_to_k.py)."""
    c.method = "multi_caption"
    c.model.text.max_len = 24  # the quickstart's 20 fit the English captions only
    c.data.train.lang = ",".join(LANGS)
    c.data.train.multi_captions = "languages"
    zeroshot = dict(type="zeroshot", dataset="shapes:zeroshot")
    retrieval = dict(type="retrieval", dataset="shapes:retrieval")
    c.evals = ml_collections.ConfigDict(
        dict(
            shapes_zeroshot=dict(**zeroshot, key="shapes", lang="en"),
            shapes_zh_zeroshot=dict(**zeroshot, key="shapes_zh", lang="zh"),
            # English, plus R@1 per language and their Mean Rank Variance (langs).
            shapes_retrieval=dict(**retrieval, key="shapes", lang="en", langs=list(LANGS)),
            shapes_zh_retrieval=dict(**retrieval, key="shapes_zh", lang="zh"),
        )
    )
    return c


def get_config(arg=None):
    if arg not in ("demo", "tiny", "demo_grouped"):
        raise ValueError(f"configs/m2_encoder.py:{arg}: expected demo, tiny or demo_grouped")
    c = bilingual(demo.get_config("quickstart"))
    c.loss.terms = ml_collections.ConfigDict({"per_caption": 1.0})
    if arg == "demo_grouped":
        c.loss.impl = "grouped"
        c.loss.group_size = 1  # divides any device count (see the module docstring)
    if arg == "tiny":
        demo.tiny(c)
    return c
