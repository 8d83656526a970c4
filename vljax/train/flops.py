"""Matmul FLOPs of a traced program, counted on its jaxpr with loops at their trip count.

XLA's `cost_analysis()` counts a loop body once, however many times it runs, so a train step
with scanned layers (model.scan) or accumulated microbatches (optimizer.accum_steps) would
count one layer and one microbatch. Here a `scan` body counts `length` times, a `shard_map`
body (one device's shard) once per device of its manual axes, a `cond` its costliest branch,
a `while` body once (its trip count is not static). remat's recomputed forward is counted, as
it runs. Counted: `dot_general` and `conv_general_dilated`, 2 FLOPs per multiply-add, the
figure MFU is quoted in; elementwise ops are not (a few percent of a transformer's).

Dead code is removed first, as XLA would: GradCache's second pass (vljax/train/step.py)
traces primal outputs it never uses, about 30% of a step's matmuls at accum_steps=4.
"""

import math

from jax._src.interpreters import partial_eval  # dce_jaxpr: no public form; jax is pinned
from jax.extend.core import ClosedJaxpr, Jaxpr


def _sub_jaxprs(params):
    for value in params.values():
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, Jaxpr):
                yield item


def _own_flops(eqn) -> float:
    name = eqn.primitive.name
    if name == "dot_general":
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        out = eqn.outvars[0].aval.shape
        return 2.0 * math.prod(out) * math.prod(lhs[d] for d in lhs_contract)
    if name == "conv_general_dilated":
        rhs = eqn.invars[1].aval.shape
        rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out features, in features, *window)
        per_output = math.prod(rhs[d] for d in rhs_spec[1:])  # in features / groups x window
        return 2.0 * math.prod(eqn.outvars[0].aval.shape) * per_output
    return 0.0


def step_flops(traced) -> float:
    """Matmul and convolution FLOPs of a traced jit (`jax.jit(f).trace(...)`), all devices,
    its dead code removed."""
    jaxpr = traced.jaxpr.jaxpr
    live, _ = partial_eval.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))
    return jaxpr_flops(live)


def jaxpr_flops(jaxpr: Jaxpr) -> float:
    """Matmul and convolution FLOPs of `jaxpr` (a `Jaxpr`; pass `closed.jaxpr`), all devices,
    as it stands (`step_flops` removes dead code first)."""
    total = 0.0
    for eqn in jaxpr.eqns:
        total += _own_flops(eqn)
        name = eqn.primitive.name
        if name == "cond":
            total += max(jaxpr_flops(branch.jaxpr) for branch in eqn.params["branches"])
            continue
        if name == "scan":
            times = eqn.params["length"]
        elif name == "shard_map":
            mesh = eqn.params["mesh"]
            times = math.prod(mesh.shape[axis] for axis in eqn.params["newly_manual_axes"])
        else:
            times = 1
        total += times * sum(jaxpr_flops(sub) for sub in _sub_jaxprs(eqn.params))
    return total
