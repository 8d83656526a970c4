"""FILIP as a method: the model's token outputs, the late-interaction similarity the evals
rank with (against pair-by-pair loops), and zero-shot by averaged prompt scores."""

import jax
import jax.numpy as jnp
import numpy as np

from tests.losses.loss_reference import filip_scores_loops
from tests.random_params import random_variables
from vljax.config import load_config
from vljax.evals import metrics
from vljax.methods import filip, get_method


def random_tokens(n, length, dim, seed):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, length, dim))
    return (t / np.linalg.norm(t, axis=-1, keepdims=True)).astype(np.float32)


def test_similarity_matches_pair_by_pair_loops(monkeypatch):
    monkeypatch.setattr(filip, "_EVAL_BLOCK", 5 * 6 * 4 * 3)  # blocks of 3 texts: 7 = 3+3+1
    images = {"tokens": random_tokens(5, 6, 8, seed=0)}
    mask = np.arange(4)[None, :] < np.array([1, 4, 2, 3, 4, 1, 2])[:, None]
    texts = {"tokens": random_tokens(7, 4, 8, seed=1), "mask": mask}
    want_i2t, want_t2i = filip_scores_loops(images["tokens"], texts["tokens"], mask)
    method = get_method("filip")
    np.testing.assert_allclose(method.similarity(images, texts, "img2txt"), want_i2t, atol=1e-6)
    np.testing.assert_allclose(method.similarity(images, texts, "txt2img"), want_t2i, atol=1e-6)


def test_zeroshot_averages_the_prompt_scores():
    images = {"tokens": random_tokens(3, 6, 8, seed=2)}
    prompts = {}  # text -> (tokens [4, 8], mask [4])
    rng = np.random.default_rng(3)

    def encode_texts(texts):
        for t in texts:
            if t not in prompts:
                prompts[t] = (
                    random_tokens(1, 4, 8, seed=len(prompts) + 10)[0],
                    rng.random(4) < 0.7,
                )
                prompts[t][1][0] = True
        return {
            "tokens": np.stack([prompts[t][0] for t in texts]),
            "mask": np.stack([prompts[t][1] for t in texts]),
        }

    classes, templates = ["circle", "square"], ["a {}", "the {}", "one {}"]
    got = metrics.zeroshot_scores(
        images, encode_texts, classes, templates, filip.late_interaction_similarity
    )
    want = np.zeros((3, 2))
    for template in templates:
        emb = encode_texts([template.format(c) for c in classes])
        want += filip_scores_loops(images["tokens"], emb["tokens"], emb["mask"])[0]
    np.testing.assert_allclose(got, want / 3, atol=1e-6)
    assert metrics.scores_topk(got, np.argmax(want, axis=1), 1) == 1.0


def test_model_adds_tokens_to_the_two_tower_outputs():
    config = load_config("configs/filip.py:tiny")
    method = get_method("filip")
    model = method.build_model(config.model)
    batch = method.example_batch(config.model, 2)
    batch["image"] = jax.random.normal(jax.random.key(0), batch["image"].shape)
    batch["tokens"] = jnp.array([[5, 6, 1] + [0] * 13, [7, 1] + [0] * 14], jnp.int32)
    params = random_variables(model, batch, seed=1)["params"]
    out = jax.jit(model.apply)({"params": params}, batch)
    n_patches = (config.model.image.image_size // config.model.image.patch_size) ** 2
    assert out["img/tokens"].shape == (2, n_patches, config.model.embed_dim)
    assert out["txt/tokens"].shape == (2, 16, config.model.embed_dim)
    np.testing.assert_array_equal(out["txt/mask"], batch["tokens"] != 0)
    np.testing.assert_allclose(np.linalg.norm(out["img/tokens"], axis=-1), 1.0, atol=1e-5)
    # The same parameters as CLIP's towers: the pooled embeddings are CLIP's.
    clip = get_method("clip").build_model(config.model)
    pooled = jax.jit(clip.apply)({"params": params}, batch)
    np.testing.assert_array_equal(out["img/emb"], pooled["img/emb"])
    np.testing.assert_array_equal(out["txt/emb"], pooled["txt/emb"])
    texts = jax.jit(lambda p, t: model.apply(p, t, method="encode_texts"))(
        {"params": params}, batch["tokens"]
    )
    np.testing.assert_array_equal(texts["tokens"], out["txt/tokens"])
