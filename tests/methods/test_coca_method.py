"""CoCa as a method: the tiny recipe trains with both terms logged, the captioning eval
scores greedy captions with corpus BLEU-4, and `vljax caption` captions image files."""

import dataclasses
import json

import ml_collections
import numpy as np
import pytest
from PIL import Image

from tests.methods.runs import smoke_train
from vljax import cli
from vljax.data.evalsets import load_eval_set
from vljax.data.shapes import ShapesSource
from vljax.errors import ConfigError
from vljax.evals.metrics import corpus_bleu4
from vljax.inference import load_run_encoder
from vljax.methods import get_method

EVALS = {"cap": {"type": "captioning", "dataset": "shapes:retrieval", "key": "s", "size": 16}}


@pytest.fixture(scope="module")
def coca_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("coca")
    assert smoke_train("coca", workdir, f"--config.evals={json.dumps(EVALS)}") == 0
    return workdir


def test_both_terms_are_logged_and_fall(coca_run):
    rows = [json.loads(line) for line in open(coca_run / "metrics.jsonl")]
    rows = [r for r in rows if "loss" in r]
    first, last = rows[0], rows[-1]
    for key in ("loss/contrastive", "loss/caption"):
        assert np.isfinite(last[key]) and last[key] < first[key]
    # The default weights: contrastive 1, caption 2.
    want = last["loss/contrastive"] + 2 * last["loss/caption"]
    assert abs(last["loss"] - want) < 1e-4 * abs(want)


def test_captioning_eval_is_corpus_bleu_of_the_greedy_captions(coca_run):
    results = json.loads((coca_run / "eval.json").read_text())
    encoder = load_run_encoder(str(coca_run))
    data = load_eval_set(ml_collections.ConfigDict(EVALS["cap"]), encoder.run_config)
    captions = encoder.caption(data["images"])
    assert len(captions) == 16 and all(isinstance(c, str) for c in captions)
    refs = data["captions"]
    assert 0.0 <= results["captioning/s/bleu4"] <= 1.0
    assert results["captioning/s/bleu4"] == pytest.approx(corpus_bleu4(captions, refs), abs=1e-9)


def test_caption_cli_captions_files_and_skips_unreadable_ones(coca_run, tmp_path, capsys):
    source = ShapesSource("retrieval", size=2, seed=0, image_size=32)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"scene {i}.png")  # a space in the name
        Image.fromarray(source[i]["image"]).resize((50, 40)).save(paths[-1])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    argv = ["caption", "--workdir", str(coca_run), "--images", str(paths[0]), str(broken)]
    assert cli.main([*argv, str(paths[1])]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(paths[0]), str(paths[1])]
    assert "broken.jpg" in err and "1 unreadable image(s) skipped" in err


def test_a_method_without_caption_head_says_so(coca_run):
    clip_encoder = dataclasses.replace(load_run_encoder(str(coca_run)), method=get_method("clip"))
    with pytest.raises(ConfigError, match="'clip' has no caption head"):
        clip_encoder.caption([np.zeros((32, 32, 3), np.uint8)])


def test_corpus_bleu4_against_hand_computed_ngram_precisions():
    """12 tokens, one substituted at position 10: clipped n-gram precisions 11/12, 9/11, 8/10,
    7/9, equal lengths (no brevity penalty): BLEU = their geometric mean."""
    hyp = "a big red circle to the left of a small blue square"
    ref = "a big red circle to the left of a small green square"
    want = (11 / 12 * 9 / 11 * 8 / 10 * 7 / 9) ** 0.25
    assert corpus_bleu4([hyp], [ref]) == pytest.approx(want, rel=1e-9)
    assert corpus_bleu4([ref], [ref]) == pytest.approx(1.0)
