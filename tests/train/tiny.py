"""A tiny demo config for trainer tests: compiles in seconds on 2 cores. Like demo.tiny, a
linear patch stem in place of the demo's conv stem (tested in tests/models/test_models.py):
the trainer's behaviour does not depend on the stem, and the conv stem cost the trainer's
tests 10% of their seconds."""

import json
import signal

import numpy as np

from configs import demo
from vljax.train import loop

TINY = {
    "batch_size": "16",
    "total_steps": "6",
    "log_every_steps": "1",
    "checkpoint_every_steps": "3",
    "eval_every_steps": "0",
    "model.embed_dim": "32",
    "model.image.image_size": "32",
    "model.image.patch_size": "8",
    "model.image.stem": "patch",
    "model.image.width": "32",
    "model.image.depth": "1",
    "model.image.heads": "2",
    "model.image.mlp_dim": "64",
    "model.text.max_len": "16",
    "model.text.width": "32",
    "model.text.depth": "1",
    "model.text.heads": "2",
    "model.text.mlp_dim": "64",
    "model.text.vocab_size": "256",
    "tokenizer.vocab_size": "256",
    "optimizer.warmup_steps": "2",
    "optimizer.learning_rate": "0.003",
    "optimizer.flatten": "True",  # as the :tiny recipes (configs/demo.py tiny)
    "data.train.size": "2000",
    "evals": "{}",
}


# Examples in each of the demo's evals when a tiny run keeps them: one encoder batch (at most
# 256), enough for R@10; the full splits (thousands of images) only cost encoder time.
EVAL_SIZE = 128


def tiny_evals() -> str:
    """The demo's shapes evals (zero-shot and retrieval), EVAL_SIZE examples each, as JSON."""
    evals = demo.get_config().evals.to_dict()
    return json.dumps({name: {**spec, "size": EVAL_SIZE} for name, spec in evals.items()})


def tiny_overrides(with_evals=False, **changes) -> list[tuple[str, str]]:
    """TINY plus `changes` (`a__b=1` sets a.b); `with_evals` keeps the demo's shapes evals
    (on EVAL_SIZE examples each)."""
    merged = dict(TINY)
    if with_evals:
        merged["evals"] = tiny_evals()
    merged.update({k.replace("__", "."): str(v) for k, v in changes.items()})
    return list(merged.items())


def synthetic_batch(config, n, seed=0) -> dict:
    """n random examples of `config`'s shapes (float images in [-1, 1], EOS-ended tokens), for
    tests that drive the train step without the data pipeline."""
    rng = np.random.default_rng(seed)
    size, length = config.model.image.image_size, config.model.text.max_len
    tokens = rng.integers(3, 200, (n, length)).astype(np.int32)
    tokens[:, -1] = 1  # EOS
    return {
        "image": rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32),
        "tokens": tokens,
    }


def tiny_argv(workdir, with_evals=False, **changes) -> list[str]:
    argv = ["train", "--config", "configs/demo.py", "--workdir", str(workdir)]
    return argv + [f"--config.{k}={v}" for k, v in tiny_overrides(with_evals, **changes)]


class Interrupting:
    """The trainer's data iterator, raising `signum` (Ctrl-C by default) while batch `at`
    is fetched: a stop in the middle of a run, at a known step."""

    def __init__(self, inner, at, signum=signal.SIGINT):
        self.inner, self.at, self.signum, self.n = inner, at, signum, 0

    def __next__(self):
        self.n += 1
        if self.n == self.at:
            signal.raise_signal(self.signum)
        return next(self.inner)

    def get_state(self):
        return self.inner.get_state()

    def set_state(self, state):
        self.inner.set_state(state)


def interrupt_at(monkeypatch, at, signum=signal.SIGINT):
    """Makes vljax.train.loop's next runs stop at batch `at` (undone by monkeypatch)."""
    real = loop.make_train_iterator
    monkeypatch.setattr(
        loop, "make_train_iterator", lambda *a, **k: Interrupting(real(*a, **k), at, signum)
    )
