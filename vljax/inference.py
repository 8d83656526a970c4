"""Encoders for inference: `vljax.load(path)` on a run directory or an exported HF folder."""

import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding

from vljax import sharding as shd
from vljax.data.preprocess import inference_image, normalize
from vljax.errors import ConfigError
from vljax.export.hf_import import import_hf_folder
from vljax.export.hf_tokenizer import load_tokenizer
from vljax.methods import Method, clip, get_method
from vljax.train.checkpoint import load_run


@functools.lru_cache(maxsize=64)
def _jitted(model, model_method: str, mesh=None, rules=None):
    """One compiled encoder per (model, method name, mesh, rules), shared by every Encoder of
    the model; with a mesh, the model is traced with the logical axis `rules` bound (so its
    activation constraints take effect, as in the train step)."""
    if mesh is None:
        return jax.jit(lambda params, x: model.apply({"params": params}, x, method=model_method))

    def encode(params, x):
        with shd.activation_sharding(mesh, rules):
            return model.apply({"params": params}, x, method=model_method)

    # Replicated outputs: every process of a multi-host run reads all the embeddings (arrays
    # spread over other processes' devices cannot be fetched).
    return jax.jit(encode, out_shardings=shd.replicated(mesh))


@functools.lru_cache(maxsize=16)
def _jitted_decoder(model, decode_captions, max_len: int, mesh=None, rules=None):
    """One compiled greedy decoder per (model, decoder, length, mesh, rules); with a mesh,
    traced with the logical axis `rules` bound, as the encoders are (`_jitted`)."""
    if mesh is None:
        return jax.jit(lambda params, images: decode_captions(model, params, images, max_len))

    def decode(params, images):
        with shd.activation_sharding(mesh, rules):
            return decode_captions(model, params, images, max_len)

    return jax.jit(decode, out_shardings=shd.replicated(mesh))


@dataclasses.dataclass(frozen=True)
class Encoder:
    """A loaded model: embeds uint8 images and strings the way its method does, and scores
    image-text pairs with the method's similarity. `dataclasses.replace(enc, params=p)` gives
    the same encoder on other params without recompiling."""

    method: Method
    model: Any  # the flax Module
    model_config: Any  # config.model
    params: Any
    tokenizer: Any
    batch_size: int = 256
    run_config: Any = None  # a run's whole config (None for an HF folder)
    step: int | None = None  # the checkpoint's step (None for an HF folder)
    family: str | None = None  # the HF family of an imported folder ("clip" | "siglip")

    def _mesh(self):
        """The mesh of live training params (a run's Evaluator), on which the encoder shards
        its batches and binds the run's activation rules; None for params on one device."""
        if self.run_config is None:
            return None
        sharding = getattr(jax.tree.leaves(self.params)[0], "sharding", None)
        return sharding.mesh if isinstance(sharding, NamedSharding) else None

    def _batched(self, model_method, x):
        return self._in_batches(functools.partial(_jitted, self.model, model_method), x)

    def _in_batches(self, jitted, x, dtype=np.float32):
        """`jitted(mesh, rules)`'s compiled function over `x` in batches of batch_size rows,
        on the params' mesh (if any) with the run's logical axis rules bound; the outputs on
        the host as `dtype`."""
        mesh = self._mesh()
        if mesh is None:
            fn, multiple = jitted(), 1
        else:
            sharding_config = self.run_config.sharding
            rules = shd.logical_rules(sharding_config)
            fn = jitted(mesh, rules)
            multiple = shd.data_parallel_size(mesh, sharding_config)
            batch_sharding = shd.batch_sharding(mesh, sharding_config)
        out = []
        for i in range(0, len(x), self.batch_size):
            chunk = x[i : i + self.batch_size]
            n = len(chunk)
            # Pad the tail to the batch size so the encoder compiles once, and every batch to
            # a multiple of the data-parallel size so that it divides over the batch axes.
            size = self.batch_size if len(x) > self.batch_size else n
            size = -(-size // multiple) * multiple
            if n < size:
                pad = np.zeros((size - n,) + chunk.shape[1:], chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            if mesh is not None:  # every process holds the whole chunk: each puts its rows
                chunk = jax.make_array_from_callback(
                    chunk.shape, batch_sharding, lambda index, c=chunk: c[index]
                )
            out.append(
                jax.tree.map(lambda y, n=n: np.asarray(y, dtype)[:n], fn(self.params, chunk))
            )
        if not out:
            shapes = jax.eval_shape(fn, self.params, jnp.asarray(x[:1]))
            return jax.tree.map(lambda s: np.zeros((0,) + s.shape[1:], dtype), shapes)
        return jax.tree.map(lambda *parts: np.concatenate(parts), *out)

    def _pixels(self, images) -> np.ndarray:
        """uint8 images of any size -> the model's normalised float32 [N, S, S, 3] input."""
        size = self.model_config.image.image_size
        images = [np.asarray(im) for im in images]
        if images and all(im.shape == (size, size, 3) for im in images):
            pixels = np.stack(images)  # already the model's size: no resampling
        elif images:
            pixels = np.stack([inference_image(im, size) for im in images])
        else:
            pixels = np.zeros((0, size, size, 3), np.uint8)
        return np.asarray(normalize(pixels), np.float32)

    def encode_images(self, images):
        """uint8 [N, H, W, 3] (any H, W) -> the method's image embedding (float32 [N, D] for
        pooled-embedding methods)."""
        return self._batched(self.method.encode_images, self._pixels(images))

    def encode_videos(self, videos):
        """uint8 [N, T, H, W, 3] clips (any H, W; frames resampled as images are) -> the
        method's video embedding ([N, D] for video_clip), for retrieval on video sets."""
        if self.method.encode_videos is None:
            raise ConfigError(
                f"method {self.method.name!r} embeds no videos (Method.encode_videos); a "
                "video eval set (moving_shapes:retrieval) needs a video method such as "
                "configs/video_clip.py, or use an image set (shapes:retrieval)"
            )
        videos = np.asarray(videos)
        n, t = videos.shape[:2]
        pixels = self._pixels(videos.reshape(n * t, *videos.shape[2:]))
        return self._batched(self.method.encode_videos, pixels.reshape(n, t, *pixels.shape[1:]))

    def encode_texts(self, texts: list[str]):
        """list[str] -> the method's text embedding (float32 [N, D] for pooled ones)."""
        tokens = self.tokenizer.encode(list(texts), self.model_config.text.max_len)
        return self._batched(self.method.encode_texts, np.asarray(tokens, np.int32))

    def _third_modality_method(self):
        if self.method.encode_third is None or self.method.score_third is None:
            raise ConfigError(
                f"method {self.method.name!r} has no third modality (Method.encode_third, "
                "score_third); the third_modality eval needs a three-modality method such as "
                "configs/symile.py"
            )
        return self.method

    def encode_third(self, tokens):
        """int32 [N, L] third-modality tokens (vljax/data/third_modality.py) -> [N, D]."""
        method = self._third_modality_method()
        return self._batched(method.encode_third, np.asarray(tokens, np.int32))

    def score_third(self, image_emb, text_emb, cand_emb) -> np.ndarray:
        """[N] image and caption embeddings and [C] candidate third-modality embeddings ->
        float32 [N, C], by the rule of the run's objective."""
        method = self._third_modality_method()
        loss_config = None if self.run_config is None else self.run_config.loss
        scores = method.score_third(image_emb, text_emb, cand_emb, loss_config)
        return np.asarray(scores, np.float32)

    def caption(self, images) -> list[str]:
        """uint8 [N, H, W, 3] -> greedy captions (methods with a caption head: CoCa)."""
        if self.method.decode_captions is None:
            raise ConfigError(
                f"method {self.method.name!r} has no caption head; captioning needs a "
                "captioning method (e.g. configs/coca.py)"
            )
        pixels = self._pixels(images)
        if not len(pixels):
            return []
        max_len = self.model_config.text.max_len
        jitted = functools.partial(
            _jitted_decoder, self.model, self.method.decode_captions, max_len
        )
        return self.tokenizer.decode(self._in_batches(jitted, pixels, np.int32))

    def similarity(self, image_emb, text_emb, direction: str = "img2txt") -> np.ndarray:
        """[N] image and [M] text embeddings -> float32 [N, M] scores; `direction` is who
        queries: "img2txt" (images rank texts) or "txt2img" (the same for dot products)."""
        if self.method.similarity_with_params is not None:
            scores = self.method.similarity_with_params(
                self.model, self.params, image_emb, text_emb, direction
            )
            return np.asarray(scores, np.float32)
        return np.asarray(self.method.similarity(image_emb, text_emb, direction), np.float32)

    def same_modality_similarity(self, emb_a, emb_b) -> np.ndarray:
        """[N] and [M] embeddings of one modality (both images or both texts) -> float32
        [N, M] scores, for DBNorm's gallery bank."""
        if self.method.same_modality_similarity is None:
            raise ConfigError(
                f"method {self.method.name!r} defines no same-modality similarity "
                "(Method.same_modality_similarity), which DBNorm's gallery bank needs; drop "
                "the eval's 'dbnorm' option for this method"
            )
        return np.asarray(self.method.same_modality_similarity(emb_a, emb_b), np.float32)


def load_run_encoder(workdir: str, step: int | None = None) -> Encoder:
    """A run directory's checkpoint (default: the latest that restores)."""
    run = load_run(workdir, step)
    method = get_method(run.config.method)
    return Encoder(
        method=method,
        model=method.build_model(run.config.model),
        model_config=run.config.model,
        params=run.params,
        tokenizer=load_tokenizer(run.tokenizer_path),
        run_config=run.config,
        step=run.step,
    )


def load_hf_encoder(path: str, batch_size: int = 256) -> Encoder:
    """A transformers CLIP/SigLIP folder, imported (`hf_import.import_hf_folder`) and run by
    vljax's own model; the folder's tokenizer is used as it is: vljax's SentencePiece model
    when vljax exported the folder (`spiece.model`), else transformers' (`HFTokenizer`)."""
    imported = import_hf_folder(path)
    return Encoder(
        method=clip.METHOD,
        model=clip.build_model(imported.model_config),
        model_config=imported.model_config,
        params=imported.params,
        tokenizer=load_tokenizer(path),
        batch_size=batch_size,
        family=imported.family,
    )


def load(path: str, step: int | None = None) -> Encoder:
    """A run directory (has config.json + checkpoints/) or an exported HF folder."""
    if os.path.exists(os.path.join(path, "checkpoints")):
        return load_run_encoder(path, step)
    if any(
        os.path.exists(os.path.join(path, name))
        for name in ("model.safetensors", "model.safetensors.index.json")
    ):
        return load_hf_encoder(path)
    raise FileNotFoundError(
        f"{path} is neither a vljax run directory (config.json + checkpoints/) nor an exported "
        "Hugging Face folder (config.json + model.safetensors[.index.json])"
    )
