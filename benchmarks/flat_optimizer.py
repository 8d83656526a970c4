"""The flat optimizer (`optimizer.flatten`) against the per-leaf one, on the `:tiny` recipes
under the tests' XLA flags (tests/xla_flags.py), where the test suite compiles them.

    python benchmarks/flat_optimizer.py [--recipes negnce coca ...] [--write]

Each recipe and setting runs in a fresh process (no compile cache carries over), on the smoke
runs' mesh (2 of 8 fake devices: tests/methods/runs.py): the train step's compiled HLO
instructions, its trace and lowering CPU seconds, its compile CPU seconds, the sharded init's
CPU seconds (trace, compile and run) and a step's CPU milliseconds (the median of 10 after 3
warm-up steps, on random data). CPU seconds, not wall: XLA's CPU runtime uses both cores.
"""

import argparse
import json
import os
import resource
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.methods.runs import SMOKE_MESH  # noqa: E402
from tests.xla_flags import TEST_XLA_FLAGS  # noqa: E402

RECIPES = ("negnce", "lit", "filip", "coca", "sycoca", "symile", "video_clip")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(recipe: str, flatten: bool) -> dict:
    """One recipe at one setting, in this process (jax imported here, after the flags)."""
    import jax
    import numpy as np

    from benchmarks.train_step import machine_name
    from vljax.config import build_config, parse_overrides
    from vljax.train.aot import build_train_step
    from vljax.train.state import init_state

    overrides, _ = parse_overrides([*SMOKE_MESH, f"--config.optimizer.flatten={flatten}"])
    config = build_config(f"configs/{recipe}.py:tiny", overrides)
    devices = jax.devices()[: int(config.mesh.data)]
    built = build_train_step(config, devices)
    start = cpu_seconds()
    lowered = built.step.lower(built.parts.abstract, built.batch)
    lowering = cpu_seconds() - start
    start = cpu_seconds()
    compiled = lowered.compile()
    compiling = cpu_seconds() - start
    instructions = sum(" = " in line for line in compiled.as_text().splitlines())
    start = cpu_seconds()
    state = jax.block_until_ready(init_state(built.parts, 0))
    init = cpu_seconds() - start

    rng = np.random.default_rng(0)

    def random_leaf(leaf):
        if np.issubdtype(leaf.dtype, np.integer):
            values = rng.integers(3, 50, leaf.shape)
        else:
            values = rng.uniform(-1, 1, leaf.shape)
        return jax.device_put(values.astype(leaf.dtype), leaf.sharding)

    batch = jax.tree.map(random_leaf, built.batch)
    times = []
    for i in range(13):
        start = cpu_seconds()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        if i >= 3:
            times.append(cpu_seconds() - start)
    return {
        "machine": machine_name(),
        "recipe": f"{recipe}:tiny",
        "flatten": flatten,
        "step_hlo_instructions": instructions,
        "step_trace_lower_cpu_s": round(lowering, 2),
        "step_compile_cpu_s": round(compiling, 2),
        "init_cpu_s": round(init, 2),
        "step_cpu_ms": round(1e3 * float(np.median(times)), 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--write", action="store_true", help="record in docs/benchmarks.md")
    parser.add_argument("--one", nargs=2, metavar=("RECIPE", "FLATTEN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1] == "True")))
        return 0

    env = {**os.environ, "XLA_FLAGS": TEST_XLA_FLAGS, "JAX_PLATFORMS": "cpu"}
    env["JAX_TRACEBACK_IN_LOCATIONS_LIMIT"] = "0"
    rows = []
    for recipe in args.recipes:
        for flatten in (False, True):
            command = [sys.executable, __file__, "--one", recipe, str(flatten)]
            out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            if out.returncode:
                sys.exit(out.stderr[-3000:])
            row = json.loads(out.stdout.splitlines()[-1])
            rows.append(row)
            print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)

    if args.write:
        from benchmarks.report import upsert_row

        note = (
            "`python benchmarks/flat_optimizer.py --write`: each `:tiny` recipe's train step "
            "and init with the per-leaf optimizer (`optimizer.flatten=False`) and the flat one "
            "(True, the recipes' setting), under the tests' XLA flags (tests/xla_flags.py), on "
            "the smoke runs' 2-device mesh, each in a fresh process; CPU seconds (both cores), "
            "a step the median of 10."
        )
        for row in rows:
            upsert_row("Flat optimizer", row, ("machine", "recipe", "flatten"), note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
