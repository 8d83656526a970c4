"""Encoders for inference: `vljax.load(path)` on a run directory or an exported HF folder."""

import os

import jax
import jax.numpy as jnp
import numpy as np


class Encoder:
    """Embeds uint8 images and strings with a two-tower model's params (L2-normalised)."""

    def __init__(self, model, model_config, params, tokenizer, batch_size: int = 256):
        self.model = model
        self.model_config = model_config
        self.params = params
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._images = jax.jit(lambda p, x: model.apply({"params": p}, x, method="encode_images"))
        self._texts = jax.jit(lambda p, t: model.apply({"params": p}, t, method="encode_texts"))

    def _batched(self, fn, x):
        out = []
        for i in range(0, len(x), self.batch_size):
            chunk = x[i : i + self.batch_size]
            n = len(chunk)
            if n < self.batch_size and len(x) > self.batch_size:
                # Pad the tail to the batch size so the encoder compiles once.
                pad = np.zeros((self.batch_size - n,) + chunk.shape[1:], chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            out.append(np.asarray(fn(self.params, jnp.asarray(chunk)), np.float32)[:n])
        if not out:
            return np.zeros((0, self.model_config.embed_dim), np.float32)
        return np.concatenate(out)

    def encode_images(self, images) -> np.ndarray:
        """uint8 [N, H, W, 3] (any H, W) -> float32 [N, D]."""
        from vljax.data.preprocess import inference_image, normalize

        size = self.model_config.image.image_size
        images = [np.asarray(im) for im in images]
        if images and all(im.shape == (size, size, 3) for im in images):
            pixels = np.stack(images)  # already the model's size: no resampling
        else:
            pixels = np.stack([inference_image(im, size) for im in images])
        return self._batched(self._images, np.asarray(normalize(pixels), np.float32))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """list[str] -> float32 [N, D]."""
        tokens = self.tokenizer.encode(list(texts), self.model_config.text.max_len)
        return self._batched(self._texts, np.asarray(tokens, np.int32))


def load_run_encoder(workdir: str, step: int | None = None) -> Encoder:
    from vljax.export.hf_tokenizer import load_tokenizer
    from vljax.models import build_model
    from vljax.train.checkpoint import load_run

    run = load_run(workdir, step)
    model = build_model(run.config.model)
    encoder = Encoder(model, run.config.model, run.params, load_tokenizer(run.tokenizer_path))
    encoder.run_config, encoder.step = run.config, run.step
    return encoder


def load(path: str, step: int | None = None):
    """A run directory (has config.json + checkpoints/) or an exported HF folder."""
    if os.path.exists(os.path.join(path, "checkpoints")):
        return load_run_encoder(path, step)
    if any(
        os.path.exists(os.path.join(path, name))
        for name in ("model.safetensors", "model.safetensors.index.json")
    ):
        from vljax.export.hf_load import load_hf_encoder

        return load_hf_encoder(path)
    raise FileNotFoundError(
        f"{path} is neither a vljax run directory (config.json + checkpoints/) nor an exported "
        "Hugging Face folder (config.json + model.safetensors[.index.json])"
    )
