"""Runs every eval in `config.evals` and writes eval.json / eval_history.jsonl.

`config.evals = {name: {"type": "zeroshot" | "retrieval" | "captioning", "dataset": spec,
...}}`; results are flat keys `zeroshot/<key>/top1`, `retrieval/<key>/txt2img_r1`,
`captioning/<key>/bleu4`, ... where `key` defaults to the eval's name. Zero-shot reports top1
and top5 (ImageNet: `classnames: "imagenet"`, `templates: "imagenet80"`, vljax/evals/
templates.py). Retrieval ranks every
caption of every image (COCO / Flickr30k: 5 each; vljax/evals/metrics.py): txt2img_r1/5/10,
img2txt_r1/5/10 and the 1-based median ranks txt2img_medr, img2txt_medr. A retrieval entry with
`langs: ["en", "zh", ...]` (or "all") also reports the retrieval keys per language
(`retrieval/<key>/<lang>/txt2img_r1`, ...), their means over the languages
(`retrieval/<key>/txt2img_r1_mean`, ...) and the Mean Rank Variance `retrieval/<key>/mrv`
(vljax/evals/multilingual.py: XM3600); one
with `dbnorm: {"bank": "shapes:retrieval_bank", "method": "dis" | "ddis", ...}` also reports
recall after DBNorm's re-scoring with held-out banks and the hub occurrence before and after
(`retrieval/<key>/txt2img_r1_dbnorm`, `.../txt2img_hubness`, `.../txt2img_hubness_dbnorm`,
vljax/evals/dbnorm_eval.py).
A retrieval entry on a video set (`moving_shapes:retrieval`: the set holds `videos`, not
`images`) ranks clips embedded by the method's `encode_videos` (video_clip) by the same
protocol, its keys named after the gallery: txt2video_r1/5/10, video2txt_r1/5/10,
txt2video_medr, video2txt_medr (and their per-language and mean forms with `langs`).
Captioning decodes greedily (methods with a caption head) and scores corpus BLEU-4 against
each image's caption.
A `third_modality` entry (three-modality methods: Symile) predicts each example's third
modality from its image and caption, `third_modality/<key>/top1`, ...
(vljax/evals/third_modality.py).
A `fewshot` entry fits a ridge-regression probe on k shots per class of frozen image
embeddings from its `train_dataset`, `fewshot/<key>/<k>shot` (vljax/evals/fewshot.py).
"""

import dataclasses
import json
import os

import jax
import numpy as np

from vljax.atomic_write import write_text
from vljax.choices import EVAL_TYPES, expected
from vljax.data.evalsets import GALLERIES, gallery_field, load_eval_set
from vljax.errors import ConfigError
from vljax.evals import metrics
from vljax.evals.dbnorm_eval import dbnorm_options, dbnorm_retrieval
from vljax.evals.fewshot import fewshot_eval
from vljax.evals.multilingual import multilingual_retrieval, take_rows
from vljax.evals.third_modality import third_modality_eval
from vljax.inference import Encoder


def run_evals(config, encoder, step: int, cache: dict | None = None) -> dict:
    cache = {} if cache is None else cache
    results = {"step": int(step)}
    for name, spec in config.evals.items():
        kind = spec.get("type")
        key = spec.get("key", None) or name
        if kind not in EVAL_TYPES:
            raise ConfigError(f"eval {name!r} has type {kind!r}; expected {expected(EVAL_TYPES)}")
        if kind == "retrieval" and spec.get("dbnorm"):
            dbnorm_options(name, spec["dbnorm"])  # a bad option fails before any encoding
        if name not in cache:
            cache[name] = load_eval_set(spec, config)
        data = cache[name]
        field = gallery_field(data)
        if field != "images" and (kind != "retrieval" or spec.get("dbnorm")):
            raise ConfigError(
                f"eval {name!r}: {spec.get('dataset')} holds {field}, which only a retrieval eval "
                "without dbnorm scores; make it type 'retrieval' (no dbnorm) or use an image set"
            )
        if kind == "zeroshot":
            classnames, templates = data.get("classnames"), data.get("templates")
            if not classnames:
                raise ConfigError(
                    f"eval {name!r}: {spec.dataset} has no class names; set "
                    f"config.evals.{name}.classnames"
                )
            image_emb = encoder.encode_images(data["images"])
            if encoder.method.prompt_ensemble == "embedding":
                class_emb = metrics.class_embeddings(encoder.encode_texts, classnames, templates)
                ranks = metrics.zeroshot_ranks(image_emb, class_emb, data["labels"])
            else:
                scores = metrics.zeroshot_scores(
                    image_emb, encoder.encode_texts, classnames, templates, encoder.similarity
                )
                ranks = metrics.ranks_of_labels(scores, np.asarray(data["labels"], np.int64))
            for k in (1, 5):  # ranks: classes scoring strictly higher than the true one
                results[f"zeroshot/{key}/top{k}"] = float(np.mean(ranks < k))
        elif kind == "retrieval":
            # The gallery: images, or clips (a video set) embedded in the image's place.
            embed = encoder.encode_videos if field == "videos" else encoder.encode_images
            image_emb = all_image_emb = embed(data[field])
            caption_sets = data.get("all_captions") or [[c] for c in data["captions"]]
            # A multilingual set (`langs`) also holds images without a caption in the eval's
            # language: left out of its main keys.
            rows = np.flatnonzero([len(c) > 0 for c in caption_sets])
            if len(rows) < len(caption_sets):
                image_emb = take_rows(image_emb, rows)
                caption_sets = [caption_sets[i] for i in rows]
            # Every caption of every image (COCO / Flickr30k: 5), ranked as one gallery.
            texts, text_image = metrics.flatten_captions(caption_sets)
            all_text_emb = encoder.encode_texts(texts)
            first = np.searchsorted(text_image, np.arange(len(caption_sets)))
            text_emb = jax.tree.map(lambda x, i=first: x[i], all_text_emb)  # first captions
            recalls = metrics.retrieval_metrics(
                image_emb,
                all_text_emb,
                text_image,
                similarity=encoder.similarity,
                gallery=GALLERIES[field],
            )
            for metric, value in recalls.items():
                results[f"retrieval/{key}/{metric}"] = float(value)
            if spec.get("langs"):
                results.update(
                    multilingual_retrieval(
                        key, data["captions_by_lang"], all_image_emb, encoder, GALLERIES[field]
                    )
                )
            if spec.get("dbnorm"):
                results.update(
                    dbnorm_retrieval(name, spec, config, encoder, data, image_emb, text_emb, cache)
                )
        elif kind == "captioning":
            captions = encoder.caption(data["images"])
            bleu = metrics.corpus_bleu4(captions, data["captions"], spec.get("tokenize", "13a"))
            results[f"captioning/{key}/bleu4"] = bleu
        elif kind == "third_modality":
            results.update(third_modality_eval(key, encoder, data))
        elif kind == "fewshot":
            results.update(fewshot_eval(name, spec, config, encoder, data, cache))
    return results


def write_results(workdir: str, results: dict, final: bool):
    with open(os.path.join(workdir, "eval_history.jsonl"), "a") as f:
        f.write(json.dumps(results) + "\n")
    if final:
        write_text(os.path.join(workdir, "eval.json"), json.dumps(results, indent=2))


def print_results(results: dict):
    width = max((len(k) for k in results), default=0)
    for key, value in results.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {shown}")


class Evaluator:
    """Evals during and after training, on the live params (no checkpoint round trip)."""

    def __init__(self, config, method, model, tokenizer, workdir):
        self.config, self.workdir = config, workdir
        self.encoder = Encoder(method, model, config.model, None, tokenizer, run_config=config)
        self.cache = {}

    def run(self, params, step: int, final: bool = False) -> dict:
        if not self.config.evals:
            return {"step": int(step)}
        encoder = dataclasses.replace(self.encoder, params=params, step=int(step))
        results = run_evals(self.config, encoder, step, self.cache)
        if jax.process_index() == 0:
            write_results(self.workdir, results, final)
            print(f"Eval at step {step}:")
            print_results(results)
        return results
