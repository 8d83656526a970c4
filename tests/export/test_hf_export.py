"""Export: vljax params -> HF folder; transformers (own processor + tokenizer) == vljax."""

import json

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
from vljax.data.tokenizer import Tokenizer
from vljax.errors import ExportError
from vljax.export.hf_config import hf_family
from vljax.export.hf_export import export_params
from vljax.inference import Encoder
from vljax.methods import clip


def hf_embeddings(folder, images, texts):
    model = transformers.AutoModel.from_pretrained(folder).eval()
    processor = transformers.AutoProcessor.from_pretrained(folder)
    inputs = processor(
        text=texts, images=images, padding="max_length", truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        zi = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        zt = model.get_text_features(
            input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask")
        ).pooler_output
    norm = lambda z: (z / z.norm(dim=-1, keepdim=True)).float().numpy()
    return model, norm(zi), norm(zt), inputs


@pytest.fixture(scope="module", params=["clip", "siglip"])
def exported(request, bpe_tokenizer, tmp_path_factory):
    family = request.param
    tok = Tokenizer(bpe_tokenizer)
    config = tiny_config(family, tok.vocab_size)
    model, params = random_params(config, seed=1 if family == "clip" else 2)
    out = tmp_path_factory.mktemp(f"hf_{family}")
    evals = {"step": 7, "zeroshot/shapes/top1": 0.5}
    assert export_params(config, params, bpe_tokenizer, str(out), eval_results=evals) == family
    enc = Encoder(clip.METHOD, model, config.model, params, tok)
    return family, str(out), enc, config


def test_embeddings_match_transformers(exported):
    family, out, enc, config = exported
    images = random_images()
    model, zi, zt, inputs = hf_embeddings(out, images, TEXTS)
    assert type(model).__name__ == ("CLIPModel" if family == "clip" else "SiglipModel")
    # The HF tokenizer produced exactly vljax's tokens.
    np.testing.assert_array_equal(
        inputs["input_ids"].numpy(), enc.tokenizer.encode(TEXTS, config.model.text.max_len)
    )
    di = np.abs(zi - enc.encode_images(images)).max()
    dt = np.abs(zt - enc.encode_texts(TEXTS)).max()
    print(f"{family}: max |image diff| {di:.2e}, max |text diff| {dt:.2e}")
    assert di < 1e-4 and dt < 1e-4
    # Logit scale and bias carried over (the params' own, random values).
    np.testing.assert_allclose(model.logit_scale.item(), enc.params["log_scale"], rtol=1e-6)
    if family == "siglip":
        np.testing.assert_allclose(model.logit_bias.item(), enc.params["bias"], rtol=1e-6)


def test_folder_contents(exported):
    family, out, _, config = exported
    cfg = json.load(open(f"{out}/config.json"))
    assert cfg["model_type"] == family
    assert cfg["text_config"]["hidden_act"] == (
        "quick_gelu" if family == "clip" else "gelu_pytorch_tanh"
    )
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert tok.model_max_length == config.model.text.max_len
    card = open(f"{out}/README.md").read()
    assert "zeroshot/shapes/top1" in card and '"embed_dim"' in card
    pre = json.load(open(f"{out}/preprocessor_config.json"))
    assert pre["size"] == {"shortest_edge": 32} and pre["image_mean"] == [0.5] * 3


def test_vljax_load_reads_exported_folder(exported):
    from vljax.inference import load_hf_encoder

    _, out, enc, _ = exported
    images = random_images(3, seed=5)
    hf_enc = load_hf_encoder(out)
    np.testing.assert_allclose(hf_enc.encode_images(images), enc.encode_images(images), atol=1e-5)
    np.testing.assert_allclose(hf_enc.encode_texts(TEXTS), enc.encode_texts(TEXTS), atol=1e-5)


@pytest.mark.parametrize(
    "family,field,value,needle",
    [
        ("clip", "model.image.pool", "gap", "model.image.pool='gap'"),
        ("clip", "model.image.pre_norm", False, "pre_layrnorm"),
        ("clip", "model.text.pool", "mean", "model.text.pool='mean'"),
        ("clip", "model.bias_init", -10.0, "no logit bias"),
        ("siglip", "model.text.causal", True, "bidirectional"),
        ("siglip", "model.image.proj", "linear", "model.image.proj='linear'"),
        ("siglip", "model.bias_init", None, "logit_bias"),
    ],
)
def test_refuses_incompatible_configs(family, field, value, needle):
    config = tiny_config(family, 100)
    node = config
    *path, last = field.split(".")
    for p in path:
        node = node[p]
    node[last] = value
    with pytest.raises(ExportError, match=None) as err:
        hf_family(config)
    assert needle in str(err.value), str(err.value)


def test_demo_config_is_refused_with_reason():
    from configs import demo

    with pytest.raises(ExportError, match="global average pooling"):
        hf_family(demo.get_config())


def test_scanned_run_exports_the_same_tensors(bpe_tokenizer, tmp_path):
    from safetensors.numpy import load_file

    from vljax.models import stack_layers

    config = tiny_config("siglip", Tokenizer(bpe_tokenizer).vocab_size)
    _, params = random_params(config, seed=3)
    export_params(config, params, bpe_tokenizer, str(tmp_path / "a"))
    config.model.scan = True
    export_params(config, stack_layers(params), bpe_tokenizer, str(tmp_path / "b"))
    a = load_file(str(tmp_path / "a/model.safetensors"))
    b = load_file(str(tmp_path / "b/model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
