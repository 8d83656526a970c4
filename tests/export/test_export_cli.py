"""`vljax export` on a (briefly) trained run, read back through transformers' Auto classes."""

import json

import numpy as np
import pytest

from tests.export.helpers import TEXTS, random_images, tiny_config


@pytest.fixture(scope="module")
def trained_run(bpe_tokenizer, tmp_path_factory):
    from vljax.train.loop import train

    c = tiny_config("clip", 512)
    c.batch_size, c.total_steps, c.checkpoint_every_steps, c.log_every_steps = 16, 3, 3, 1
    c.evals = {}
    c.data.train.size = 500
    c.tokenizer.model = bpe_tokenizer
    workdir = tmp_path_factory.mktemp("run")
    train(c, str(workdir))
    json.dump({"step": 3, "zeroshot/shapes/top1": 0.25}, open(workdir / "eval.json", "w"))
    return str(workdir)


def test_export_cli_then_auto_classes_match_vljax(trained_run, tmp_path, capsys):
    import vljax
    from tests.export.test_hf_export import hf_embeddings
    from vljax.export.cli import export_cli

    out = str(tmp_path / "hf")
    assert export_cli(["--workdir", trained_run, "--format", "hf", "--out", out, "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "CLIPModel" in printed and "token ids equal: True" in printed
    run_enc = vljax.load(trained_run)
    images = random_images()
    model, zi, zt, _ = hf_embeddings(out, images, TEXTS)
    assert np.abs(zi - run_enc.encode_images(images)).max() < 1e-4
    assert np.abs(zt - run_enc.encode_texts(TEXTS)).max() < 1e-4
    assert "zeroshot/shapes/top1 | 0.2500" in open(f"{out}/README.md").read()
    # vljax.load on the exported folder runs the vljax model on the imported weights.
    hf_enc = vljax.load(out)
    np.testing.assert_allclose(hf_enc.encode_texts(TEXTS), run_enc.encode_texts(TEXTS), atol=1e-5)

    # --dtype bf16 halves the file and stays close.
    out16 = str(tmp_path / "hf16")
    assert export_cli(["--workdir", trained_run, "--out", out16, "--dtype", "bf16"]) == 0
    from safetensors import safe_open

    with safe_open(f"{out16}/model.safetensors", framework="pt") as f:
        assert all(f.get_tensor(k).dtype.is_floating_point for k in f.keys())
        assert str(f.get_tensor("logit_scale").dtype) == "torch.bfloat16"
    _, zi16, _, _ = hf_embeddings(out16, images, TEXTS)
    assert np.abs(zi16.astype(np.float32) - zi).max() < 5e-2


def test_export_cli_errors_are_clear(tmp_path, capsys):
    from vljax.export.cli import export_cli

    assert export_cli(["--workdir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no config.json" in capsys.readouterr().err
