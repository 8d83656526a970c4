"""Contrastive-loss benchmark: per-device scratch, fwd+bwd time, communication, max batch.

    python benchmarks/loss.py                      # 8 fake CPU devices (what docs record)
    python benchmarks/loss.py --quick              # a smaller sweep, for a smoke run

For each impl (all_gather, ring, grouped), kind (softmax, sigmoid), device count P and local
batch b it records, for one jitted value_and_grad (loss and the four gradients):
  - scratch: the compiled program's `memory_analysis().temp_size_in_bytes` (per device;
    inputs and outputs excluded; deterministic, nothing runs),
  - fwd+bwd time: median of --repeats runs after a warm-up; the impls of one (kind, P, b)
    cell are run interleaved, so a busy machine slows them alike,
  - bytes received per device: derived from the algorithm (formulas in docs/losses.md and in
    `comm_bytes` below), not measured,
  - the largest global batch whose scratch fits --budget-gib (bisection on compiles).
Results go to the "## Contrastive losses" section of docs/benchmarks.md (one sub-section per
machine) and to a PNG next to it. The loss alone on one GPU at B = 16k..256k is
`benchmarks/gpu.py --sections ring`.
"""

import argparse
import math
import os
import platform
import re
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# jax-free: XLA_FLAGS (--devices) must be set before jax is imported.
from vljax.choices import LOSS_IMPLS as IMPLS  # noqa: E402
from vljax.choices import LOSS_KINDS as KINDS  # noqa: E402

SECTION = "Contrastive losses"
PNG = os.path.join(ROOT, "docs", "benchmarks_loss.png")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--devices", type=int, default=8, help="fake CPU devices (CPU only)")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--chunk", type=int, default=None, help="ring tile (default: the loss's)")
    p.add_argument("--budget-gib", type=float, default=1.0)
    p.add_argument("--budget-chunk", type=int, default=None, help="ring chunk, large batches")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="small sweep (smoke test)")
    p.add_argument("--no-write", action="store_true", help="print only")
    return p.parse_args(argv)


def setup(args):
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={args.devices}"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def comm_bytes(impl, kind, n, b, dim, elem, group_size):
    """Bytes each device receives in one fwd+bwd (derived; scalar psums left out).

    all_gather: all-gather of the b x D blocks of the other P - 1 devices in the forward and
    its transpose, a reduce-scatter of the same size, in the backward; softmax moves both
    zimg and ztxt, sigmoid only ztxt. grouped: the same with G devices instead of P.
    ring softmax: forward P - 1 text blocks with their diagonal dots (1 float per column) +
    the travelling column statistics (2 floats per column, P hops); backward P - 1 text
    blocks with 2 floats per column (softplus of the column L, diagonal dots), plus the
    float32 text-gradient accumulator for P hops. ring sigmoid: one pass: P - 1 text blocks plus the
    float32 gradient accumulator for P hops.
    """
    f32 = 4
    if impl in ("all_gather", "grouped"):
        peers = (group_size if impl == "grouped" else n) - 1
        tensors = 2 if kind == "softmax" else 1
        return 2 * tensors * peers * b * dim * elem
    hops = n if n > 1 else 0
    if kind == "softmax":
        fwd = (n - 1) * (b * dim * elem + b * f32) + hops * 2 * b * f32
        bwd = (n - 1) * (b * dim * elem + 2 * b * f32) + hops * b * dim * f32
        return fwd + bwd
    return (n - 1) * b * dim * elem + hops * b * dim * f32


_DTYPE_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "f64": 8, "s32": 4, "u32": 4, "pred": 1}
_COLLECTIVES = ("collective-permute", "all-gather", "all-reduce", "reduce-scatter", "all-to-all")


def _shape_bytes(shape):
    """Bytes of the first array shape in an HLO type string, e.g. 'f32[64,512]{1,0}'."""
    m = re.search(r"(\w+)\[([\d,]*)\]", shape)
    if not m or m.group(1) not in _DTYPE_BYTES:
        return 0
    dims = [int(d) for d in m.group(2).split(",") if d]
    return _DTYPE_BYTES[m.group(1)] * math.prod(dims)


def hlo_comm_bytes(hlo: str) -> int:
    """Bytes one device receives, read off the compiled (SPMD, per-device) HLO text.

    Collectives in a while body count `known_trip_count` times. Per op, with n devices in its
    replica group and S the bytes of its (per-device) result: collective-permute S,
    all-gather S (n-1)/n, reduce-scatter S (n-1), all-to-all S (n-1)/n, all-reduce
    2 S (n-1)/n (ring algorithms). Async pairs count at their -start.
    """
    comps, name, body = {}, None, []
    for line in hlo.splitlines():
        head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if head and not line.startswith(" "):
            name, body = head.group(1), []
            comps[name] = body
            if line.startswith("ENTRY"):
                comps["__entry__"] = body
        elif name is not None:
            body.append(line)

    def count(comp, seen=()):
        total = 0
        for line in comps.get(comp, ()):
            m = re.match(r"\s*(?:ROOT )?%[\w.\-]+ = (.+?) ([\w\-]+)\(", line)
            if not m:
                continue
            shape, op = m.groups()
            base = op.removesuffix("-start")
            if base in _COLLECTIVES and not op.endswith("-done"):
                groups = re.search(r"replica_groups=\{\{([\d,]*)\}", line)
                n = len(groups.group(1).split(",")) if groups else 1
                size = _shape_bytes(shape.split("(", 1)[-1] if op.endswith("-start") else shape)
                total += {
                    "collective-permute": size,
                    "all-gather": size * (n - 1) // max(n, 1),
                    "reduce-scatter": size * (n - 1),
                    "all-to-all": size * (n - 1) // max(n, 1),
                    "all-reduce": 2 * size * (n - 1) // max(n, 1),
                }[base]
            called = re.search(r"body=%([\w.\-]+)", line)
            if op == "while" and called and called.group(1) not in seen:
                trips = re.search(r'"known_trip_count":\{"n":"(\d+)"', line)
                trips = int(trips.group(1)) if trips else 1
                total += trips * count(called.group(1), seen + (comp,))
            elif op in ("call", "conditional"):
                for callee in re.findall(
                    r"(?:to_apply|calls|branch_computations)=\{?%([\w.\-]+)", line
                ):
                    total += count(callee, seen + (comp,))
        return total

    return count("__entry__")


def group_size_for(n):
    """The grouped impl's group in this benchmark: half the devices (two "hosts")."""
    return max(1, n // 2)


class Bench:
    def __init__(self, args):
        import jax
        import jax.numpy as jnp
        import numpy as np

        self.jax, self.jnp, self.np = jax, jnp, np
        self.args = args
        self.dtype = jnp.dtype(args.dtype)

    def mesh(self, n):
        from jax.sharding import Mesh

        return Mesh(self.np.array(self.jax.devices()[:n]), ("data",))

    def step_fn(self, impl, kind, n, chunk):
        from vljax.losses import contrastive_loss

        mesh = self.mesh(n)
        fn = lambda zi, zt, s, c: contrastive_loss(
            zi, zt, scale=s, bias=c, kind=kind, impl=impl, mesh=mesh, chunk=chunk,
            group_size=group_size_for(n) if impl == "grouped" else None,
        )  # fmt: skip
        return mesh, self.jax.jit(self.jax.value_and_grad(fn, argnums=(0, 1, 2, 3)))

    def compile(self, impl, kind, n, b, chunk=None):
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        mesh, step = self.step_fn(impl, kind, n, chunk)
        emb = self.jax.ShapeDtypeStruct(
            (n * b, self.args.dim), self.dtype, sharding=NamedSharding(mesh, P("data"))
        )
        scalar = self.jax.ShapeDtypeStruct((), self.jnp.float32)
        return step.lower(emb, emb, scalar, scalar).compile()

    def analyse(self, impl, kind, n, b, chunk=None):
        """(scratch bytes, bytes received per device from the HLO), or (None, None)."""
        try:
            compiled = self.compile(impl, kind, n, b, chunk)
        except Exception as e:  # e.g. an allocation that cannot even be planned
            print(f"  compile failed for {impl} {kind} P={n} b={b}: {type(e).__name__}")
            return None, None
        return compiled.memory_analysis().temp_size_in_bytes, hlo_comm_bytes(compiled.as_text())

    def scratch(self, impl, kind, n, b, chunk=None):
        return self.analyse(impl, kind, n, b, chunk)[0]

    def inputs(self, n, b):
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        np, jnp = self.np, self.jnp
        rng = np.random.default_rng(0)
        z = rng.normal(size=(2, n * b, self.args.dim)).astype(np.float32)
        z /= np.linalg.norm(z, axis=-1, keepdims=True)
        sharding = NamedSharding(self.mesh(n), P("data"))
        zi, zt = (self.jax.device_put(jnp.asarray(a, self.dtype), sharding) for a in z)
        return zi, zt, jnp.float32(10.0), jnp.float32(-10.0)

    def times(self, cells, n, b):
        """{(impl, kind): median seconds}; runs interleaved, after one warm-up each."""
        args = self.inputs(n, b)
        compiled = {key: self.compile(*key, n, b, self.args.chunk) for key in cells}
        for c in compiled.values():
            self.jax.block_until_ready(c(*args))
        samples = {key: [] for key in cells}
        for _ in range(self.args.repeats):
            for key, c in compiled.items():
                t = time.perf_counter()
                self.jax.block_until_ready(c(*args))
                samples[key].append(time.perf_counter() - t)
        return {key: statistics.median(v) for key, v in samples.items()}

    def max_batch(self, impl, kind, n, chunk):
        """Largest global batch (a multiple of 256 * n) whose scratch fits the budget."""
        budget = self.args.budget_gib * 2**30
        fits = lambda b: (s := self.scratch(impl, kind, n, b, chunk)) is not None and s <= budget
        lo, hi = 0, 256
        while fits(hi):
            lo, hi = hi, hi * 2
            if hi > 2**21:
                return n * lo
        while hi - lo > 256:
            mid = (lo + hi) // 2 // 256 * 256
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return n * lo


def mib(x):
    return "-" if x is None else f"{x / 2**20:.1f}"


def cpu_sweep(bench, args):
    ns = (1, 2, 4, 8) if not args.quick else (2, 8)
    ns = tuple(n for n in ns if n <= args.devices)
    bs = (256, 1024, 2048) if not args.quick else (128, 256)
    time_bs = (256, 1024) if not args.quick else (128,)
    elem = bench.dtype.itemsize
    rows = []
    for kind in KINDS:
        for n in ns:
            for b in bs:
                t = bench.times([(i, kind) for i in IMPLS], n, b) if b in time_bs else {}
                for impl in IMPLS:
                    s, hlo = bench.analyse(impl, kind, n, b, args.chunk)
                    g = group_size_for(n)
                    rows.append(dict(
                        kind=kind, impl=impl, P=n, b=b, B=n * b,
                        scratch=s, time=t.get((impl, kind)), comm_hlo=hlo,
                        comm=comm_bytes(impl, kind, n, b, args.dim, elem, g),
                    ))  # fmt: skip
                    print(fmt_row(rows[-1]), flush=True)
    n = max(ns)
    maxb = {}
    for kind in KINDS:
        for impl in IMPLS:
            chunk = args.budget_chunk if impl == "ring" else None
            maxb[(impl, kind)] = bench.max_batch(impl, kind, n, chunk)
            print(f"max global batch {impl} {kind} P={n}: {maxb[(impl, kind)]}", flush=True)
    big_b = 2**20 // n
    big = {k: bench.scratch("ring", k, n, big_b, args.budget_chunk) for k in KINDS}
    print(f"ring scratch at B=2^20 over {n}: {big}", flush=True)
    return rows, maxb, big


def fmt_row(r):
    t = r.get("time")
    return (
        f"{r['kind']:8s} {r['impl']:10s} {r.get('dtype', '')}"
        f" P={r['P']} b={r['b']} scratch={mib(r.get('scratch'))} MiB"
        f" time={'-' if t is None else f'{t * 1e3:.0f} ms'}"
        + (f" comm={mib(r.get('comm_hlo'))} MiB (derived {mib(r['comm'])})" if "comm" in r else "")
    )


def machine(args):
    import jax

    d = jax.devices()[0]
    if d.platform == "cpu":
        cores = f"{os.cpu_count()} cores ({platform.machine()})"
        return f"{len(jax.devices())} fake CPU devices on {cores}"
    return f"1 x {d.device_kind}"


def markdown(args, rows, maxb=None, big=None):
    from vljax.losses._sharded import ring_chunk

    dim = args.dim
    dtype = args.dtype
    lines = [
        "Command: `python benchmarks/loss.py"
        f"{' --quick' if args.quick else ''}`; D = {dim}, inputs {dtype},"
        f" ring chunk {args.chunk or 'default (512 here)'}"
        + ", grouped: G = P/2"
        + ". Scratch = compiled `temp_size_in_bytes` per device (MiB); time = fwd+bwd median"
        f" of {args.repeats} runs after a warm-up (ms)"
        + "; comm = MiB received per device, read off the compiled HLO (collectives"
        " times while-loop trip counts, `hlo_comm_bytes`), and as derived (`comm_bytes`;"
        " no scalars; at P = 2 XLA merges the forward's and backward's identical first"
        " ppermute of the text block, which the derivation counts twice).",
        "",
    ]
    cols = ["kind", "impl", "P", "b", "B", "scratch MiB", "time ms", "comm MiB (HLO)", "derived"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r["kind"], r["impl"], r["P"], r["b"], r["B"], mib(r.get("scratch"))]
        cells += ["-" if r.get("time") is None else f"{r['time'] * 1e3:.0f}"]
        cells += [mib(r.get("comm_hlo")), mib(r["comm"])]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if maxb:
        n = max(r["P"] for r in rows)
        lines += [
            "",
            f"Largest global batch whose scratch fits {args.budget_gib:g} GiB per device, P = {n}"
            f" (ring chunk {args.budget_chunk or 'default, 128 from b = 131,072 on'},"
            " searched in steps of 256 rows per device):",
            "",
            "| kind | " + " | ".join(IMPLS) + " |",
            "|---|" + "---|" * len(IMPLS),
        ]
        for kind in KINDS:
            lines.append(f"| {kind} | " + " | ".join(f"{maxb[(i, kind)]:,}" for i in IMPLS) + " |")
    if big:
        n = max(r["P"] for r in rows)
        lines += [
            "",
            f"Ring at B = 1,048,576 over {n} devices (b = {2**20 // n:,}, chunk "
            f"{args.budget_chunk or ring_chunk(2**20 // n, None)}): scratch "
            + ", ".join(f"{k} {mib(v)} MiB" for k, v in big.items())
            + ".",
        ]
    lines += checks(rows)
    return "\n".join(lines) + "\n"


def checks(rows):
    """The issue's figures, read off this run."""
    get = {(r["kind"], r["impl"], r["P"], r["b"]): r for r in rows if "dtype" not in r}
    out = []
    for kind in KINDS:
        ring = [get.get((kind, "ring", n, 2048), {}).get("scratch") for n in (2, 4, 8)]
        ag = get.get((kind, "all_gather", 8, 2048), {}).get("scratch")
        if None not in ring and ag:
            spread = (max(ring) - min(ring)) / max(ring)
            out.append(
                f"- {kind}, b = 2048: ring/all_gather scratch at P = 8 = 1/{ag / ring[2]:.0f};"
                f" ring scratch over P = 2, 4, 8 varies by {100 * spread:.0f}% of its maximum"
                f" ({100 * (max(ring) - min(ring)) / min(ring):.0f}% of its minimum)."
            )
        tr = get.get((kind, "ring", 8, 1024), {}).get("time")
        ta = get.get((kind, "all_gather", 8, 1024), {}).get("time")
        if tr and ta:
            out.append(f"- {kind}, b = 1024, P = 8: ring time / all_gather time = {tr / ta:.2f}.")
    return ["", "Figures:", ""] + out if out else []


def plot(args, rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    b_mem = max(r["b"] for r in rows if r.get("scratch") is not None)
    for kind, ls in zip(KINDS, ("-", "--")):
        for impl in IMPLS:
            pts = [(r["P"], r["scratch"]) for r in rows
                   if r["kind"] == kind and r["impl"] == impl and r["b"] == b_mem
                   and r.get("scratch") is not None]  # fmt: skip
            if pts:
                x, y = zip(*pts)
                axes[0].plot(x, [v / 2**20 for v in y], ls, marker="o", label=f"{impl} {kind}")
    axes[0].set(xlabel="devices P", ylabel="scratch per device (MiB)", yscale="log",
                title=f"Per-device scratch, b = {b_mem}, D = {args.dim}")  # fmt: skip
    axes[0].legend(fontsize=7)
    timed = [r for r in rows if r.get("time") is not None]
    if timed:
        n, b = max(r["P"] for r in timed), max(r["b"] for r in timed)
        cell = [r for r in timed if r["P"] == n and r["b"] == b]
        labels = [f"{r['impl']}\n{r['kind']}" for r in cell]
        axes[1].bar(range(len(cell)), [r["time"] * 1e3 for r in cell])
        axes[1].set_xticks(range(len(cell)), labels, fontsize=7)
        axes[1].set(ylabel="fwd+bwd (ms)", title=f"Time, P = {n}, b = {b}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_section(key, body):
    """Replaces this machine's `### key` sub-section of `## Contrastive losses`, keeping the
    others (e.g. GPU figures when re-running on CPU)."""
    from benchmarks.report import DOC, replace_section

    text = open(DOC).read() if os.path.exists(DOC) else ""
    head = f"## {SECTION}\n"
    subs, intro = {}, ""
    if head in text:
        part = text.split(head, 1)[1]
        part = part.split("\n## ", 1)[0]
        chunks = part.split("\n### ")
        intro = chunks[0].strip()
        for c in chunks[1:]:
            title, _, rest = c.partition("\n")
            subs[title.strip()] = rest.strip()
    subs[key] = body.strip()
    intro = intro or (
        "Written by `benchmarks/loss.py`; the method and formulas are in docs/losses.md."
        f" Plot: `{os.path.relpath(PNG, os.path.join(ROOT, 'docs'))}` (last CPU run).\n\n"
        f"![loss benchmark]({os.path.relpath(PNG, os.path.join(ROOT, 'docs'))})"
    )
    out = intro + "\n\n" + "\n\n".join(f"### {k}\n\n{v}" for k, v in subs.items())
    replace_section(SECTION, out.strip() + "\n")


def main(argv=None):
    args = parse_args(argv)
    setup(args)
    bench = Bench(args)
    print(f"machine: {machine(args)}", flush=True)
    rows, maxb, big = cpu_sweep(bench, args)
    body = markdown(args, rows, maxb, big)
    print(body)
    if not args.no_write:
        key = machine(args) + (" (quick)" if args.quick else "")
        plot(args, rows, PNG)
        write_section(key, body)
        print(f"wrote docs/benchmarks.md ## {SECTION} / ### {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
