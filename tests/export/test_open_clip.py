"""open_clip export and import: vljax params -> open_clip folder -> open_clip's own CLIP, its
tokenizer and preprocessing == vljax; the folder imported back gives the same params."""

import json

import jax
import numpy as np
import pytest

from tests.export.helpers import (
    TEXTS,
    import_open_clip,
    random_images,
    random_params,
    tiny_config,
    torch,
)
from vljax import cli
from vljax.data.preprocess import inference_image, normalize
from vljax.data.tokenizer import Tokenizer
from vljax.errors import ExportError
from vljax.export.cli import ARCH_FIELDS
from vljax.export.hf_export import host_params, image_posemb
from vljax.export.mapping import posemb_with_patch_bias
from vljax.export.open_clip_config import check_open_clip_exportable
from vljax.export.open_clip_export import export_open_clip_params
from vljax.export.open_clip_import import import_open_clip_folder
from vljax.export.open_clip_mapping import to_open_clip_state_dict
from vljax.inference import Encoder
from vljax.methods import clip
from vljax.params_io import load_flat


def variant_config(variant, vocab_size):
    """`clip`: tiny_config's CLIP (quick_gelu, sincos2d, pre-norm). `sigmoid`: the same towers
    with everything else open_clip can express switched (gelu_tanh, ln_eps, no ln_pre, a
    biased text projection, sigmoid loss with a logit bias)."""
    c = tiny_config("clip", vocab_size)
    if variant == "sigmoid":
        c.model.activation, c.model.ln_eps, c.model.bias_init = "gelu_tanh", 1e-6, -10.0
        c.model.image.update(pre_norm=False, posemb="learn")
        c.model.text.proj = "linear_bias"
        c.loss.kind = "sigmoid"
    return c


def pixels(images, size):
    """vljax's model input for uint8 images, as NCHW torch (what open_clip's transforms give)."""
    x = normalize(np.stack([inference_image(im, size) for im in images]))
    return torch.tensor(x.transpose(0, 3, 1, 2))


@pytest.fixture(scope="module", params=["clip", "sigmoid"])
def exported(request, bpe_tokenizer, tmp_path_factory):
    open_clip = import_open_clip()
    tok = Tokenizer(bpe_tokenizer)
    config = variant_config(request.param, tok.vocab_size)
    model, params = random_params(config, seed=5)
    out = str(tmp_path_factory.mktemp(f"open_clip_{request.param}"))
    export_open_clip_params(config, params, bpe_tokenizer, out)
    oc_model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + out)
    oc_tokenizer = open_clip.get_tokenizer("local-dir:" + out)
    enc = Encoder(clip.METHOD, model, config.model, params, tok)
    return dict(
        config=config, params=params, out=out, enc=enc,
        model=oc_model.eval(), preprocess=preprocess, tokenizer=oc_tokenizer,
    )  # fmt: skip


def test_open_clip_embeddings_and_tokens_match_vljax(exported):
    e, config = exported, exported["config"]
    assert type(e["model"]).__name__ == "CLIP"
    ids = e["tokenizer"](TEXTS).numpy()
    np.testing.assert_array_equal(ids, e["enc"].tokenizer.encode(TEXTS, config.model.text.max_len))
    # open_clip's HFTokenizer cleans texts first (ftfy, HTML unescaping): an entity differs;
    # the transformers tokenizer it wraps gives vljax's ids for any text.
    entity = ["a red circle &amp; a square"]
    ours = e["enc"].tokenizer.encode(entity, config.model.text.max_len)
    assert not np.array_equal(e["tokenizer"](entity).numpy(), ours)
    raw = e["tokenizer"].tokenizer(
        entity,
        padding="max_length",
        truncation=True,
        max_length=config.model.text.max_len,
        return_tensors="np",
    )
    np.testing.assert_array_equal(raw["input_ids"], ours)  # fmt: skip
    images = random_images()
    with torch.no_grad():
        zi = e["model"].encode_image(pixels(images, 32), normalize=True).numpy()
        zt = e["model"].encode_text(torch.tensor(ids), normalize=True).numpy()
    di = np.abs(zi - e["enc"].encode_images(images)).max()
    dt = np.abs(zt - e["enc"].encode_texts(TEXTS)).max()
    print(f"open_clip vs vljax: max |image diff| {di:.2e}, max |text diff| {dt:.2e}")
    assert di < 1e-4 and dt < 1e-4
    assert e["model"].logit_scale.item() == pytest.approx(float(e["params"]["log_scale"]))
    if config.model.bias_init is None:
        assert e["model"].logit_bias is None
    else:
        assert e["model"].logit_bias.item() == pytest.approx(float(e["params"]["bias"]))


def test_open_clip_preprocessing_is_vljax_s(exported):
    """Shortest side to 32 with bicubic, centre crop, mean = std = 0.5: vljax's inference
    pipeline (read off the transforms open_clip built; torchvision may be the tests' stub)."""
    steps = {type(t).__name__: t for t in exported["preprocess"].transforms}
    assert steps["Resize"].size == 32 and steps["Resize"].interpolation.name == "BICUBIC"
    assert tuple(steps["CenterCrop"].size) == (32, 32)
    assert list(steps["Normalize"].mean) == [0.5] * 3 and list(steps["Normalize"].std) == [0.5] * 3
    cfg = json.load(open(f"{exported['out']}/open_clip_config.json"))
    assert cfg["preprocess_cfg"]["resize_mode"] == "shortest"


def _arch_overrides(model_config):
    """--config.model.X=V for every architecture field, as the imported checkpoint has it."""
    out = []
    for field in ARCH_FIELDS:
        node = model_config
        for part in field.split("."):
            node = node[part]
        out.append(f"--config.model.{field}={node}")
    return out


def test_round_trip_through_vljax_import(exported, tmp_path, capsys):
    """vljax -> open_clip -> `vljax import --open-clip` -> the original params (the conv bias
    folded into the position table, as open_clip's conv has none); exported again, identical
    tensors."""
    e, config = exported, exported["config"]
    imported = import_open_clip_folder(e["out"])
    assert (
        imported.model_config.image.posemb == "learn" and imported.model_config.text.pad_id is None
    )
    args = ["import", "--open-clip", e["out"], "--config", "configs/demo.py:clip",
            "--workdir", str(tmp_path)] + _arch_overrides(imported.model_config)  # fmt: skip
    if config.model.bias_init is not None:  # a logit bias param: the config must have one
        args.append(f"--config.model.bias_init={config.model.bias_init}")
    assert cli.main(args) == 0, capsys.readouterr().err
    assert "Imported open_clip checkpoint" in capsys.readouterr().out
    params = load_flat(tmp_path / "init/params.safetensors")
    want = host_params(e["params"])
    bias = want["img"]["embedding"]["bias"]
    want["img"]["pos_embedding"] = posemb_with_patch_bias(
        image_posemb(want["img"], config.model.image), bias
    )[None]
    want["img"]["embedding"]["bias"] = np.zeros_like(bias)
    assert jax.tree.structure(params) == jax.tree.structure(want)
    jax.tree.map(np.testing.assert_array_equal, params, want)
    from safetensors.numpy import load_file

    written = load_file(f"{e['out']}/open_clip_model.safetensors")
    again = to_open_clip_state_dict(params, params["img"]["pos_embedding"][0])
    assert again.keys() == written.keys()
    for k in written:
        np.testing.assert_array_equal(again[k], written[k], err_msg=k)
    cfg = json.load(open(tmp_path / "init/config.json"))
    assert cfg["tokenizer"]["model"] == str(tmp_path / "init/tokenizer.model")
    assert cfg["model"]["text"]["pad_id"] is None and cfg["model"]["bias_init"] == (
        config.model.bias_init
    )


def test_public_style_open_clip_model_imports(tmp_path):
    """An open_clip CLIP as open_clip's own configs build it (argmax text pooling, OpenAI-style
    EOT = the largest id, padding attended) imports and embeds like open_clip."""
    from safetensors.torch import save_file

    open_clip = import_open_clip()
    model_cfg = dict(
        embed_dim=16,
        vision_cfg=dict(image_size=32, patch_size=8, width=40, layers=2, head_width=8),
        text_cfg=dict(context_length=12, vocab_size=64, width=32, heads=4, layers=2),
    )
    torch.manual_seed(0)
    model = open_clip.CLIP(**model_cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "open_clip_model.safetensors"))  # fmt: skip
    json.dump({"model_cfg": model_cfg}, open(tmp_path / "open_clip_config.json", "w"))
    imported = import_open_clip_folder(str(tmp_path))
    m = imported.model_config
    assert (m.activation, m.text.pool, m.text.eos_id, m.image.mlp_dim) == ("gelu", "eos", 63, 160)
    ids = np.zeros((3, 12), np.int64)
    for i, n in enumerate([2, 5, 11]):
        ids[i, :n] = np.random.RandomState(i).randint(1, 60, n)
        ids[i, n] = 63
    images = np.random.RandomState(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    vl = clip.build_model(m)
    v = {"params": imported.params}
    with torch.no_grad():
        zi = model.encode_image(torch.tensor(images.transpose(0, 3, 1, 2)), normalize=True)
        zt = model.encode_text(torch.tensor(ids), normalize=True)
    # Jitted: eagerly each op of these shapes compiles on its own (114 programs).
    apply = jax.jit(vl.apply, static_argnames="method")
    ours_i = np.asarray(apply(v, images, method="encode_images"))
    ours_t = np.asarray(apply(v, ids.astype(np.int32), method="encode_texts"))
    assert np.abs(zi.numpy() - ours_i).max() < 1e-4 and np.abs(zt.numpy() - ours_t).max() < 1e-4


@pytest.mark.parametrize(
    "family,needles",
    [
        ("demo", ["model.image.stem='conv_pool'", "model.image.pool='gap'"]),
        ("siglip", ["model.image.pool='map'", "model.image.proj='none'",
                    "model.text.pad_id=0 with causal=False and pool='last'"]),
    ],
)  # fmt: skip
def test_refused_architectures_name_the_fields(family, needles):
    from configs import demo

    config = demo.get_config() if family == "demo" else tiny_config("siglip", 100)
    with pytest.raises(ExportError) as err:
        check_open_clip_exportable(config)
    msg = str(err.value)
    assert "--format open_clip" in msg and all(n in msg for n in needles), msg


def test_refused_open_clip_models_name_the_setting(tmp_path):
    cfg = dict(
        embed_dim=16,
        vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=2, attentional_pool=True),
        text_cfg=dict(width=32, heads=4, layers=2, pool_type="argmax", proj_type="mlp"),
    )
    json.dump({"model_cfg": cfg}, open(tmp_path / "open_clip_config.json", "w"))
    with pytest.raises(ExportError) as err:
        import_open_clip_folder(str(tmp_path))
    assert "vision_cfg.attentional_pool=True" in str(err.value)
    assert "text_cfg.proj_type='mlp'" in str(err.value)
