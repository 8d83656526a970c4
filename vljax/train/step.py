"""One training step: forward, the method's loss, gradients (with microbatch accumulation),
update.

The step is a single `jax.jit` with explicit in/out shardings and a donated state, so the
same function runs on one CPU, fake CPU devices, a GPU or a pod.
"""

import dataclasses
import inspect

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from vljax import sharding as shd
from vljax.data.preprocess import normalize
from vljax.errors import ConfigError
from vljax.methods import LossContext
from vljax.methods.method import LOSS_RNG
from vljax.train import optimizer as opt_lib
from vljax.train.state import TrainState


def make_loss_fn(method, model, config, mesh):
    """(params, batch, rngs) -> (loss, metrics): the method's weighted loss terms."""
    ctx = LossContext(
        mesh=mesh, batch_axes=shd.batch_axes(config.sharding), loss_config=config.loss
    )

    frozen = list(config.optimizer.frozen)
    gated_encoder_args = inspect.signature(getattr(model, method.encode_texts)).parameters

    def loss_fn(params, batch, rngs):
        if frozen:
            params = opt_lib.stop_frozen_gradients(params, frozen)
        if batch["image"].dtype == jnp.uint8:  # the loader ships pixels; scale them on device
            batch = {**batch, "image": normalize(batch["image"])}
        outputs = model.apply({"params": params}, batch, train=True, rngs=rngs)

        def encode_texts(tokens, token_gates=None):
            gates = {} if token_gates is None else {"token_gates": token_gates}
            if gates and "token_gates" not in gated_encoder_args:
                raise ConfigError(
                    f"method {config.method!r}: its text encoder takes no token_gates, which "
                    "a relevance score needs (loss.tpm_masking='relevance'); use "
                    "loss.tpm_masking='random' with this method"
                )
            variables = {"params": params}
            return model.apply(variables, tokens, method=method.encode_texts, **gates)

        step_ctx = dataclasses.replace(ctx, encode_texts=encode_texts, rng=rngs.get(LOSS_RNG))
        return method.loss(outputs, batch, step_ctx)

    return loss_fn


def _split_microbatches(batch, accum_steps, mesh, sharding_config):
    """[B, ...] -> [accum, B/accum, ...] so every microbatch keeps rows on every device.

    Rows are taken with a stride (reshape to [B/accum, accum] then swap) rather than in
    contiguous blocks, so no device sits idle while another holds a whole microbatch.
    """
    spec = PartitionSpec(None, shd.batch_axes(sharding_config) or None)

    def split(x):
        x = x.reshape((x.shape[0] // accum_steps, accum_steps) + x.shape[1:])
        x = jnp.swapaxes(x, 0, 1)
        return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))

    return jax.tree.map(split, batch)


def make_train_step(parts, config, mesh):
    """The jitted step of a run's parts (vljax.train.state.build_parts)."""
    method, tx = parts.method, parts.tx
    loss_fn = make_loss_fn(method, parts.model, config, mesh)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    accum_steps = int(config.optimizer.get("accum_steps", 1))
    schedule = opt_lib.learning_rate_schedule(config.optimizer, config.total_steps)

    def step(state: TrainState, batch):
        if accum_steps == 1:
            rngs = method.rngs(state.rng, state.step)
            (loss, aux), grads = grad_fn(state.params, batch, rngs)
        else:
            micro = _split_microbatches(batch, accum_steps, mesh, config.sharding)

            def body(carry, xs):
                index, mb = xs
                rngs = method.rngs(state.rng, state.step, index)
                (loss, aux), grads = grad_fn(state.params, mb, rngs)
                acc_loss, acc_grads = carry
                acc_grads = jax.tree.map(lambda a, g: a + g.astype(jnp.float32), acc_grads, grads)
                return (acc_loss + loss, acc_grads), aux

            zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)
            xs = (jnp.arange(accum_steps), micro)
            (loss, grads), aux = jax.lax.scan(body, (jnp.zeros((), jnp.float32), zeros), xs)
            loss = loss / accum_steps
            grads = jax.tree.map(lambda g: g / accum_steps, grads)
            # Each term's mean over the microbatches, like the total; scale/bias are the same
            # in every microbatch.
            aux = jax.tree.map(lambda a: jnp.mean(a, axis=0), aux)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        counts = opt_lib.nonfinite_counts(opt_state)
        # The optimizer's own count skips non-finite steps: the rate it applied this step.
        skipped_before = opt_lib.nonfinite_counts(state.opt_state)["total"]
        metrics = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(params),
            "learning_rate": schedule(state.step - skipped_before),
            "nonfinite_in_a_row": counts["consecutive"],
            "nonfinite_total": counts["total"],
            **aux,
        }
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, metrics

    batch_sharding = shd.batch_sharding(mesh, config.sharding)
    return jax.jit(
        step,
        in_shardings=(parts.shardings, batch_sharding),
        out_shardings=(parts.shardings, shd.replicated(mesh)),
        donate_argnums=(0,),
    )
