"""Import: tiny random transformers CLIPModel / SiglipModel -> vljax; outputs and round trip."""

import json
import os

import jax
import numpy as np
import pytest

from tests.export.helpers import (
    TEXTS,
    random_images,
    random_params,
    tiny_config,
    torch,
    transformers,
)
from vljax import cli
from vljax.data.tokenizer import Tokenizer
from vljax.errors import ExportError
from vljax.export.hf_import import import_hf_folder
from vljax.export.mapping import to_hf_state_dict
from vljax.methods.clip import build_model
from vljax.params_io import load_flat, save_flat

V = 64  # vocab of the tiny random models
L = 16


def _perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def make_clip(eos_token_id=1, vocab_size=V):
    text = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=L, hidden_act="quick_gelu",
                pad_token_id=0, bos_token_id=None, eos_token_id=eos_token_id)  # fmt: skip
    vision = dict(hidden_size=40, intermediate_size=56, num_hidden_layers=2, num_attention_heads=5,
                  image_size=32, patch_size=8, hidden_act="quick_gelu")  # fmt: skip
    cfg = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)
    torch.manual_seed(0)
    return _perturb(transformers.CLIPModel(cfg), 1)


def make_siglip(pad_token_id=0, vocab_size=V):
    text = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=L, hidden_act="gelu_pytorch_tanh",
                layer_norm_eps=1e-6, pad_token_id=pad_token_id, bos_token_id=None, eos_token_id=1,
                projection_size=40)  # fmt: skip
    vision = dict(hidden_size=40, intermediate_size=56, num_hidden_layers=2, num_attention_heads=5,
                  image_size=32, patch_size=8, hidden_act="gelu_pytorch_tanh",
                  layer_norm_eps=1e-6)  # fmt: skip
    torch.manual_seed(0)
    config = transformers.SiglipConfig(text_config=text, vision_config=vision)
    return _perturb(transformers.SiglipModel(config), 2)


def tokens(pad, eos, n=4, seed=0):
    rs = np.random.RandomState(seed)
    out = np.full((n, L), pad, np.int64)
    for i, length in enumerate([3, 7, L - 1, 1][:n]):
        out[i, :length] = rs.randint(3, V - 2, length)
        out[i, length] = eos
    return out


def compare(hf_model, folder, ids, attention_mask):
    imported = import_hf_folder(folder)
    model = build_model(imported.model_config)
    images = np.random.RandomState(3).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        zi = hf_model.get_image_features(pixel_values=torch.tensor(images.transpose(0, 3, 1, 2)))
        mask = None if attention_mask is None else torch.tensor(attention_mask)
        zt = hf_model.get_text_features(input_ids=torch.tensor(ids), attention_mask=mask)
    norm = lambda z: (z.pooler_output / z.pooler_output.norm(dim=-1, keepdim=True)).numpy()
    p = {"params": imported.params}
    # One compiled program per encoder: run eagerly, every op compiles its own.
    apply = jax.jit(model.apply, static_argnames="method")
    ours_i = np.asarray(apply(p, images, method="encode_images"))
    ours_t = np.asarray(apply(p, ids.astype(np.int32), method="encode_texts"))
    return np.abs(norm(zi) - ours_i).max(), np.abs(norm(zt) - ours_t).max(), imported


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    model = make_clip()
    folder = tmp_path_factory.mktemp("clip")
    model.save_pretrained(folder)
    return model, str(folder)


@pytest.fixture(scope="module")
def siglip_folder(tmp_path_factory):
    model = make_siglip()
    folder = tmp_path_factory.mktemp("siglip")
    model.save_pretrained(folder)
    return model, str(folder)


def test_clip_import_matches_transformers(clip_folder):
    model, folder = clip_folder
    ids = tokens(pad=0, eos=1)
    di, dt, imported = compare(model, folder, ids, (ids != 0).astype(np.int64))
    assert imported.family == "clip"
    assert di < 1e-5 and dt < 1e-5, (di, dt)


def test_siglip_import_matches_transformers(siglip_folder):
    model, folder = siglip_folder
    ids = tokens(pad=0, eos=1)
    di, dt, imported = compare(model, folder, ids, (ids != 0).astype(np.int64))
    assert imported.family == "siglip" and imported.model_config.text.pad_id == 0
    assert di < 1e-5 and dt < 1e-5, (di, dt)


def test_siglip_without_padding_mask(tmp_path):
    """big_vision SigLIP checkpoints pad with EOS and were trained attending to padding."""
    model = make_siglip(pad_token_id=1)
    model.save_pretrained(tmp_path)
    ids = tokens(pad=1, eos=1)
    di, dt, imported = compare(model, str(tmp_path), ids, None)
    assert imported.model_config.text.pad_id is None
    assert di < 1e-5 and dt < 1e-5, (di, dt)


def test_legacy_clip_eos_2_pools_at_the_largest_id(tmp_path):
    """OpenAI CLIP configs say eos_token_id=2: HF pools at argmax(ids) (EOS is the max id)."""
    model = make_clip(eos_token_id=2)
    model.save_pretrained(tmp_path)
    ids = tokens(pad=V - 1, eos=V - 1)  # OpenAI pads with EOS
    di, dt, imported = compare(model, str(tmp_path), ids, None)
    assert imported.model_config.text.eos_id == V - 1
    assert di < 1e-5 and dt < 1e-5, (di, dt)


@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_round_trip_hf_vljax_hf_is_identical(which, clip_folder, siglip_folder, tmp_path):
    model, folder = clip_folder if which == "clip" else siglip_folder
    imported = import_hf_folder(folder)
    save_flat(imported.params, tmp_path / "p.safetensors")
    params = load_flat(tmp_path / "p.safetensors")
    back = to_hf_state_dict(params, which, params["img"]["pos_embedding"][0])
    original = {k: v.numpy() for k, v in model.state_dict().items() if "position_ids" not in k}
    assert set(back) == set(original)
    for k, v in original.items():
        np.testing.assert_array_equal(back[k], v, err_msg=k)


def test_params_io_keeps_scalars_and_names(tmp_path):
    tree = {"a": {"kernel": np.ones((2, 3), np.float32)}, "log_scale": np.float32(2.0)}
    save_flat(tree, tmp_path / "x.safetensors")
    back = load_flat(tmp_path / "x.safetensors")
    assert back["log_scale"].shape == () and back["a"]["kernel"].shape == (2, 3)
    from safetensors.numpy import load_file

    assert set(load_file(str(tmp_path / "x.safetensors"))) == {"a/kernel", "log_scale"}


def test_pickle_only_folder_is_refused(tmp_path, clip_folder):
    _, folder = clip_folder
    os.makedirs(tmp_path / "bin")
    json.dump(json.load(open(f"{folder}/config.json")), open(tmp_path / "bin/config.json", "w"))
    (tmp_path / "bin/pytorch_model.bin").write_bytes(b"\0")
    with pytest.raises(FileNotFoundError, match="pickle"):
        import_hf_folder(str(tmp_path / "bin"))


def test_import_cli_writes_init_and_reports_mismatches(clip_folder, tmp_path, capsys):
    from vljax.export.cli import import_cli

    _, folder = clip_folder
    # demo.py's architecture differs from the tiny checkpoint: refused, field by field.
    rc = cli.main(
        ["import", "--hf", folder, "--config", "configs/demo.py", "--workdir", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert rc == ExportError.exit_code and "Traceback" not in err
    assert "model.image.width: config 128, checkpoint 40" in err
    assert "model.image.pool: config 'gap', checkpoint 'cls'" in err
    assert "model.image.stem: config 'conv_pool', checkpoint 'patch'" in err
    # Matching overrides: accepted; params written stacked for a scanned config.
    args = ["--hf", folder, "--config", "configs/demo.py", "--workdir", str(tmp_path),
            "--config.model.scan=True"]  # fmt: skip
    fixes = dict(
        embed_dim=24, activation="quick_gelu", **{"image.width": 40, "image.heads": 5,
        "image.mlp_dim": 56, "image.depth": 2, "image.image_size": 32, "image.patch_size": 8,
        "image.pool": "cls", "image.posemb": "learn", "image.pre_norm": True, "image.stem": "patch",
        "text.vocab_size": V, "text.max_len": L, "text.width": 32, "text.depth": 2,
        "text.mlp_dim": 48, "text.heads": 4}
    )  # fmt: skip
    args += [f"--config.model.{k}={v}" for k, v in fixes.items()]
    assert import_cli(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "--config.init_from=" in out
    params = load_flat(tmp_path / "init/params.safetensors")
    assert params["img"]["encoder"]["encoderblock"]["ln_1"]["scale"].shape == (2, 40)
    cfg = json.load(open(tmp_path / "init/config.json"))
    assert cfg["init_from"] == str(tmp_path / "init") and cfg["model"]["text"]["pad_id"] is None


def test_not_clip_or_siglip_is_refused(tmp_path):
    from transformers import BertConfig

    BertConfig().save_pretrained(tmp_path)
    with pytest.raises(ExportError, match="model_type='bert'"):
        import_hf_folder(str(tmp_path))


def test_exported_then_imported_vljax_run_round_trips(bpe_tokenizer, tmp_path):
    """vljax -> HF -> vljax params are equal (CLIP conv bias folds into the posemb)."""
    from vljax.export.hf_export import export_params

    tok = Tokenizer(bpe_tokenizer)
    config = tiny_config("clip", tok.vocab_size)
    config.model.image.posemb = "learn"
    model, params = random_params(config, seed=4)
    params["img"]["embedding"]["bias"] = np.zeros_like(params["img"]["embedding"]["bias"])
    export_params(config, params, bpe_tokenizer, str(tmp_path))
    imported = import_hf_folder(str(tmp_path))
    jax.tree.map(np.testing.assert_array_equal, imported.params, params)
    imgs = random_images(2)
    from vljax.inference import load_hf_encoder

    enc = load_hf_encoder(str(tmp_path))
    assert enc.encode_images(imgs).shape == (2, 24)
    assert enc.encode_texts(TEXTS).shape == (len(TEXTS), 24)


@pytest.mark.parametrize("recipe", ["clip_vit_b16", "siglip_vit_b16"])
def test_public_b16_architectures_match_the_recipes(recipe):
    """openai/clip-vit-base-patch16 and google/siglip-base-patch16-224 (transformers' defaults)
    import into configs/clip_vit_b16.py and configs/siglip_vit_b16.py without overrides."""
    import importlib

    from vljax.export.cli import architecture_mismatches
    from vljax.export.hf_config import vljax_model_config

    if "clip" in recipe:
        hf = transformers.CLIPConfig(vision_config=dict(patch_size=16))
    else:
        hf = transformers.SiglipConfig()
    _, ckpt = vljax_model_config(hf)
    config = importlib.import_module(f"configs.{recipe}").get_config()
    assert architecture_mismatches(config.model, ckpt) == []
