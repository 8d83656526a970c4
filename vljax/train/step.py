"""One training step: forward, the method's loss, gradients (exact accumulation of the
contrastive batch over microbatches), update.

The step is a single `jax.jit` with explicit in/out shardings and a donated state, so the
same function runs on one CPU, fake CPU devices, a GPU or a pod. The model is traced with the
config's logical axis rules bound (`vljax.sharding.activation_sharding`), so the towers'
activation constraints (batch, `act_mlp` / `act_heads` over `tensor`) reach XLA.

With `optimizer.accum_steps = K > 1` the step is GradCache (arXiv 2101.06983): the towers run
in K microbatches but the loss sees all B outputs at once (every negative), so loss and
gradients are those of the K = 1 step (rounding aside) while activation memory is one
microbatch's: (a) the K microbatch forwards, keeping only the model outputs; (b) the loss of
the whole batch and its gradient w.r.t. those outputs; (c) each microbatch's forward again
under `jax.vjp`, pulling back its slice of the output gradients into the parameter gradients.
"""

import dataclasses
import inspect

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from vljax import sharding as shd
from vljax.data.preprocess import PIXEL_FIELDS, normalize
from vljax.errors import ConfigError
from vljax.methods import LossContext
from vljax.methods.method import LOSS_RNG
from vljax.train import optimizer as opt_lib
from vljax.train.state import TrainState


def make_forward(model, config, mesh):
    """(params, batch, rngs) -> the model's training outputs, traced with the activation
    sharding rules bound; frozen params (optimizer.frozen) get no gradient."""
    frozen = list(config.optimizer.frozen)
    rules = shd.logical_rules(config.sharding)

    def forward(params, batch, rngs):
        if frozen:
            params = opt_lib.stop_frozen_gradients(params, frozen)
        # The loader ships pixels (images, video frames); scale them on device.
        batch = {
            k: normalize(v) if k in PIXEL_FIELDS and v.dtype == jnp.uint8 else v
            for k, v in batch.items()
        }
        with shd.activation_sharding(mesh, rules):
            return model.apply({"params": params}, batch, train=True, rngs=rngs)

    return forward


def make_outputs_loss(method, model, config, mesh):
    """(outputs, batch, loss_rng, params=None) -> (loss, metrics): the method's weighted terms
    on the model outputs of the whole batch. With `params`, terms may embed texts of their own
    (ctx.encode_texts) and score pairs the model's way (ctx.score_pairs), differentiable in
    params; without (cached accumulation), they may not."""
    ctx = LossContext(
        mesh=mesh, batch_axes=shd.batch_axes(config.sharding), loss_config=config.loss
    )
    frozen = list(config.optimizer.frozen)
    rules = shd.logical_rules(config.sharding)
    gated_encoder_args = inspect.signature(getattr(model, method.encode_texts)).parameters

    def outputs_loss(outputs, batch, loss_rng, params=None):
        encode_texts = None
        if params is not None:
            if frozen:
                params = opt_lib.stop_frozen_gradients(params, frozen)

            def encode_texts(tokens, token_gates=None):
                gates = {} if token_gates is None else {"token_gates": token_gates}
                if gates and "token_gates" not in gated_encoder_args:
                    raise ConfigError(
                        f"method {config.method!r}: its text encoder takes no token_gates, "
                        "which a relevance score needs (loss.tpm_masking='relevance'); use "
                        "loss.tpm_masking='random' with this method"
                    )
                variables = {"params": params}
                with shd.activation_sharding(mesh, rules):
                    return model.apply(variables, tokens, method=method.encode_texts, **gates)

        score_pairs = None
        if params is not None and method.score_pairs is not None:
            # Called inside the loss's shard_map (manual axes): no activation rules bound.
            def score_pairs(params, rows, texts, counts):
                variables = {"params": params}
                return model.apply(variables, rows, texts, counts, method=method.score_pairs)

        step_ctx = dataclasses.replace(
            ctx, encode_texts=encode_texts, score_pairs=score_pairs, params=params, rng=loss_rng
        )
        return method.loss(outputs, batch, step_ctx)

    return outputs_loss


def make_loss_fn(method, model, config, mesh):
    """(params, batch, rngs) -> (loss, metrics): the method's weighted loss terms."""
    forward = make_forward(model, config, mesh)
    outputs_loss = make_outputs_loss(method, model, config, mesh)

    def loss_fn(params, batch, rngs):
        outputs = forward(params, batch, rngs)
        return outputs_loss(outputs, batch, rngs.get(LOSS_RNG), params)

    return loss_fn


def _split_microbatches(batch, accum_steps, mesh, sharding_config):
    """[B, ...] -> [accum, B/accum, ...] so every microbatch keeps rows on every device.

    Rows are taken with a stride (reshape to [B/accum, accum] then swap) rather than in
    contiguous blocks, so no device sits idle while another holds a whole microbatch: each
    device's microbatch rows are rows of its own shard, and no row moves between devices.
    """
    spec = PartitionSpec(None, shd.batch_axes(sharding_config) or None)

    def split(x):
        x = x.reshape((x.shape[0] // accum_steps, accum_steps) + x.shape[1:])
        x = jnp.swapaxes(x, 0, 1)
        return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))

    return jax.tree.map(split, batch)


def _merge_microbatches(stacked, mesh, sharding_config):
    """The inverse of `_split_microbatches`: [accum, B/accum, ...] -> [B, ...] in the batch's
    row order and sharding (each device's rows stay where they are)."""
    sharding = shd.batch_sharding(mesh, sharding_config)

    def merge(x):
        x = jnp.swapaxes(x, 0, 1)
        x = x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])
        return jax.lax.with_sharding_constraint(x, sharding)

    return jax.tree.map(merge, stacked)


def make_cached_accumulation(method, model, config, mesh):
    """(params, batch, key, step) -> ((loss, metrics), grads) of the whole batch, computed in
    `optimizer.accum_steps` microbatches (GradCache; see the module docstring).

    Model outputs must be per example (a leading batch axis) or scalars that depend on the
    params alone (`scale`, `bias`): the former are concatenated across microbatches, the latter
    are the same in every microbatch and each microbatch pulls back 1/K of their gradient.
    Microbatch k draws its model rngs from `Method.rngs(key, step, k)` in both passes, so
    the forward that is differentiated sees the same masks as the one the loss saw; the loss
    terms get the step's key, as at K = 1.
    """
    accum_steps = int(config.optimizer.get("accum_steps", 1))
    forward = make_forward(model, config, mesh)
    outputs_loss = make_outputs_loss(method, model, config, mesh)

    def value_and_grad(params, batch, key, step):
        micro = _split_microbatches(batch, accum_steps, mesh, config.sharding)
        indices = jnp.arange(accum_steps)
        micro_size = jax.tree.leaves(batch)[0].shape[0] // accum_steps

        # (a) Every microbatch's outputs; this scan is never differentiated, so it keeps no
        # activations beyond one microbatch's.
        def encode(_, xs):
            index, mb = xs
            return None, forward(params, mb, method.rngs(key, step, index))

        _, stacked = jax.lax.scan(encode, None, (indices, micro))
        scalar = {k for k, v in stacked.items() if v is not None and v.ndim == 1}
        for name, value in stacked.items():
            if name not in scalar and value is not None and value.shape[1] != micro_size:
                raise ValueError(
                    f"model output {name!r} of shape {value.shape[1:]} is neither per example "
                    f"(leading axis {micro_size}) nor a scalar, so it cannot be accumulated "
                    "over microbatches; set Method.cached_accumulation=False for this method"
                )
        absent = {k: None for k, v in stacked.items() if v is None}  # e.g. no logit bias
        shared = {k: stacked[k][0] for k in scalar}
        per_example = {k: v for k, v in stacked.items() if v is not None and k not in scalar}
        outputs = {**absent, **shared, **_merge_microbatches(per_example, mesh, config.sharding)}

        # (b) The loss of the whole batch and its gradient w.r.t. the differentiable outputs.
        inexact = [
            k for k, v in outputs.items() if v is not None and jnp.issubdtype(v.dtype, jnp.inexact)
        ]
        loss_rng = method.rngs(key, step).get(LOSS_RNG)

        def loss_of(differentiable):
            return outputs_loss({**outputs, **differentiable}, batch, loss_rng)

        (loss, metrics), cotangents = jax.value_and_grad(loss_of, has_aux=True)(
            {k: outputs[k] for k in inexact}
        )
        scalar_cotangents = {k: cotangents[k] / accum_steps for k in inexact if k in scalar}
        micro_cotangents = _split_microbatches(
            {k: v for k, v in cotangents.items() if k not in scalar},
            accum_steps,
            mesh,
            config.sharding,
        )

        # (c) Each microbatch again, pulling its slice of the output gradients back into the
        # params; the scan frees one microbatch's activations before the next.
        def pull_back(acc, xs):
            index, mb, cotangent = xs
            rngs = method.rngs(key, step, index)
            _, vjp = jax.vjp(lambda p: {k: forward(p, mb, rngs)[k] for k in inexact}, params)
            (grads,) = vjp({**cotangent, **scalar_cotangents})
            return jax.tree.map(lambda a, g: a + g.astype(jnp.float32), acc, grads), None

        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
        grads, _ = jax.lax.scan(pull_back, zeros, (indices, micro, micro_cotangents))
        return (loss, metrics), grads

    return value_and_grad


def make_train_step(parts, config, mesh, *, donate: bool = True):
    """The jitted step of a run's parts (vljax.train.state.build_parts). `donate`: the new
    state is written into the old one's buffers (the trainer's way; off only to measure it)."""
    method, tx = parts.method, parts.tx
    loss_fn = make_loss_fn(method, parts.model, config, mesh)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    accum_steps = int(config.optimizer.get("accum_steps", 1))
    accumulated_grad_fn = make_cached_accumulation(method, parts.model, config, mesh)
    schedule = opt_lib.learning_rate_schedule(config.optimizer, config.total_steps)
    flatten = opt_lib.flattens(config.optimizer)

    def step(state: TrainState, batch):
        if accum_steps == 1:
            rngs = method.rngs(state.rng, state.step)
            (loss, aux), grads = grad_fn(state.params, batch, rngs)
        else:
            (loss, aux), grads = accumulated_grad_fn(state.params, batch, state.rng, state.step)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        counts = opt_lib.nonfinite_counts(opt_state)
        # The optimizer's own count skips non-finite steps: the rate it applied this step.
        skipped_before = opt_lib.nonfinite_counts(state.opt_state)["total"]
        metrics = {
            "loss": loss,
            "grad_norm": opt_lib.global_norm(grads, flatten),
            "param_norm": opt_lib.global_norm(params, flatten),
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
        donate_argnums=(0,) if donate else (),
    )
