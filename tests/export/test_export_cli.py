"""`vljax export` on a (briefly) trained run, read back through transformers' Auto classes."""

import dataclasses
import json
import os

import numpy as np
import pytest

import vljax
from tests.export.helpers import TEXTS, random_images, tiny_config
from vljax import cli
from vljax.errors import EXIT_BUG, EXIT_DATA, ExportError
from vljax.methods import clip


@pytest.fixture(scope="module")
def trained_run(bpe_tokenizer, tmp_path_factory):
    from vljax.train.loop import train

    c = tiny_config("clip", 512)
    c.batch_size, c.total_steps, c.checkpoint_every_steps, c.log_every_steps = 16, 3, 3, 1
    c.evals = {}
    c.optimizer.flatten = True  # as the tiny recipes: the step compiles in half the time
    c.data.train.size = 500
    c.tokenizer.model = bpe_tokenizer
    workdir = tmp_path_factory.mktemp("run")
    train(c, str(workdir))
    json.dump({"step": 3, "zeroshot/shapes/top1": 0.25}, open(workdir / "eval.json", "w"))
    return str(workdir)


def test_export_cli_then_auto_classes_match_vljax(trained_run, tmp_path, capsys):
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


def test_export_cli_open_clip_format_loads_in_open_clip(trained_run, tmp_path, capsys):
    """`vljax export --format open_clip` on the run: open_clip's CLIP, tokenizer == vljax."""
    from tests.export.helpers import import_open_clip, torch
    from tests.export.test_open_clip import pixels

    open_clip = import_open_clip()
    out = str(tmp_path / "oc")
    assert (
        cli.main(["export", "--workdir", trained_run, "--format", "open_clip", "--out", out]) == 0
    )
    assert f"open_clip.create_model_and_transforms('local-dir:{out}')" in capsys.readouterr().out
    model, _, _ = open_clip.create_model_and_transforms("local-dir:" + out)
    ids = open_clip.get_tokenizer("local-dir:" + out)(TEXTS)
    run_enc = vljax.load(trained_run)
    np.testing.assert_array_equal(ids.numpy(), run_enc.tokenizer.encode(TEXTS, 16))
    images = random_images(3)
    with torch.no_grad():
        zi = model.eval().encode_image(pixels(images, 32), normalize=True).numpy()
        zt = model.encode_text(ids, normalize=True).numpy()
    assert np.abs(zi - run_enc.encode_images(images)).max() < 1e-4
    assert np.abs(zt - run_enc.encode_texts(TEXTS)).max() < 1e-4


def test_export_cli_errors_are_clear(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    code = cli.main(["export", "--workdir", str(tmp_path / "run"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == EXIT_DATA and "no config.json" in err and "Traceback" not in err


def _snapshot(folder):
    return {
        os.path.relpath(os.path.join(r, n), folder): open(os.path.join(r, n), "rb").read()
        for r, _, names in os.walk(folder)
        for n in names
    }


def test_export_into_the_run_or_another_run_is_refused_and_the_run_is_intact(
    trained_run, tmp_path, capsys
):
    before = _snapshot(trained_run)
    for out in (trained_run, os.path.join(trained_run, "hf")):
        code = cli.main(["export", "--workdir", trained_run, "--out", out, "--overwrite"])
        assert code == ExportError.exit_code
    other = tmp_path / "other_run"
    (other / "checkpoints").mkdir(parents=True)
    code = cli.main(["export", "--workdir", trained_run, "--out", str(other), "--overwrite"])
    err = capsys.readouterr().err
    assert code == ExportError.exit_code and "holds a vljax run" in err
    assert "Traceback" not in err
    assert _snapshot(trained_run) == before


def test_a_non_empty_out_needs_overwrite_which_replaces_it_whole(trained_run, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "model.safetensors.index.json").write_text("{}")  # stale, from a sharded export
    argv = ["export", "--workdir", trained_run, "--out", str(out)]
    assert cli.main(argv) == ExportError.exit_code
    assert os.listdir(out) == ["model.safetensors.index.json"]
    assert cli.main([*argv, "--overwrite"]) == 0
    assert "model.safetensors" in os.listdir(out)
    assert "model.safetensors.index.json" not in os.listdir(out)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".hf.")]


def test_a_failing_export_leaves_nothing(trained_run, tmp_path, monkeypatch):
    import vljax.export.cli as export_cli_module

    def half_then_fail(workdir, out_dir, *args):
        open(os.path.join(out_dir, "config.json"), "w").write("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_cli_module, "export_run", half_then_fail)
    out = tmp_path / "hf"
    assert cli.main(["export", "--workdir", trained_run, "--out", str(out)]) == EXIT_BUG
    assert os.listdir(tmp_path) == []


def test_a_method_without_the_format_is_refused_in_one_line(
    trained_run, tmp_path, monkeypatch, capsys
):
    import vljax.export.hf_export as hf_export

    no_export = dataclasses.replace(clip.METHOD, export_formats=())
    monkeypatch.setattr(hf_export, "get_method", lambda name: no_export)
    code = cli.main(["export", "--workdir", trained_run, "--out", str(tmp_path / "hf")])
    err = capsys.readouterr().err.strip()
    assert code == ExportError.exit_code and len(err.splitlines()) == 1
    assert "cannot be exported as --format hf (it supports: none)" in err
    assert os.listdir(tmp_path) == []


def test_a_folder_that_needs_remote_code_is_refused(tmp_path, capsys):
    folder = tmp_path / "custom"
    folder.mkdir()
    config = {"model_type": "clip", "auto_map": {"AutoModel": "modeling_evil.EvilModel"}}
    (folder / "config.json").write_text(json.dumps(config))
    argv = ["import", "--hf", str(folder), "--config", "configs/demo.py:clip"]
    code = cli.main([*argv, "--workdir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == ExportError.exit_code and "auto_map" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()
