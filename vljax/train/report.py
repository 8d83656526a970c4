"""Run records: metrics.jsonl + TensorBoard while training, report.md with PNG plots after.

Keys the report knows (any others still land in metrics.jsonl, TensorBoard and the
"other scalars" plot): `loss` (and any key containing "loss"), `learning_rate`,
`images_per_s`. Eval files hold flat `{"step": N, "<group>/<dataset>/<metric>": value}`:
`eval.json` the latest, `eval_history.jsonl` one such object per periodic eval.
"""

import json
import math
import os
import re
import sys

import numpy as np

from vljax.atomic_write import save_figure, write_text

METRICS = "metrics.jsonl"
EVAL = "eval.json"
EVAL_HISTORY = "eval_history.jsonl"
REPORT = "report.md"

LOSS, LEARNING_RATE, THROUGHPUT = "loss", "learning_rate", "images_per_s"


def _scalar(key, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric {key!r} must be a scalar number, got {type(value)}") from None
    # Strict JSON has no NaN/Inf; a skipped non-finite step is logged as null.
    return value if math.isfinite(value) else None


def summary_writer_class():
    """tensorboardX's SummaryWriter, imported without torch. tensorboardX imports torch when
    it is installed (the export extra), only to accept torch tensors, which vljax never passes;
    that import cost 2.3 s (5 s on a loaded machine) at every `vljax train` start."""
    if "torch" in sys.modules:  # already paid for
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None  # `import torch` raises ImportError while this is set
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


def read_jsonl(path):
    """Rows of a JSON-lines file; a torn last line (a crash mid-write) is dropped."""
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


class MetricsWriter:
    """Appends `{"step": step, **metrics}` to DIR/metrics.jsonl and TensorBoard scalars
    to DIR/tensorboard/.

    resume_step: the step the run restarts from (0 for a fresh start in a used directory).
    Rows with a larger step are removed from metrics.jsonl and hidden in TensorBoard, so a
    resumed run never records a step twice. None keeps whatever is there.
    enabled: only one process should write; by default process 0 of a multi-host job.
    """

    def __init__(self, workdir, resume_step=None, enabled=None):
        if enabled is None:
            import jax

            enabled = jax.process_index() == 0
        self.enabled = enabled
        self.path = os.path.join(workdir, METRICS)
        self._file = self._tb = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        if resume_step is not None:
            self._truncate(int(resume_step))
        self._tb = summary_writer_class()(
            os.path.join(workdir, "tensorboard"),
            purge_step=None if resume_step is None else int(resume_step) + 1,
            flush_secs=30,
        )
        self._file = open(self.path, "a", encoding="utf-8")

    def _truncate(self, resume_step):
        rows = [r for r in read_jsonl(self.path) if r.get("step", 0) <= resume_step]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))

    def write(self, step, metrics):
        if not self.enabled:
            return
        step = int(step)
        row = {"step": step}
        row.update({k: _scalar(k, v) for k, v in metrics.items() if k != "step"})
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        for key, value in row.items():
            if key != "step" and value is not None:
                self._tb.add_scalar(key, value, step)

    def close(self):
        if self._file is not None:
            self._file.close()
            self._tb.close()
            self._file = self._tb = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------
# report.md


def _by_step(rows):
    """Rows sorted by step, the last row winning when a step repeats."""
    merged = {}
    for r in rows:
        if "step" in r:
            merged.setdefault(int(r["step"]), {}).update(r)
    return [merged[s] for s in sorted(merged)]


def _series(rows, key):
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=float)


def _ema(y, n):
    """Debiased exponential moving average, span ~ n points."""
    alpha = 2.0 / (n + 1)
    out, acc, weight = np.empty_like(y), 0.0, 0.0
    for i, v in enumerate(y):
        acc = (1 - alpha) * acc + alpha * v
        weight = (1 - alpha) * weight + alpha
        out[i] = acc / weight
    return out


def _figure(nplots=1, ncols=1, width=7.0, height=3.6):
    # Figure + Agg canvas directly: no pyplot, no global backend switch for callers.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    nrows = math.ceil(nplots / ncols)
    fig = Figure(figsize=(width, height * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    # Fixed margins in inches (title above, step label and tick labels below, y tick labels
    # left) instead of a constrained layout: that measured every tick label and drew each
    # figure twice, about half of a report's time.
    fig_w, fig_h = fig.get_size_inches()
    top, bottom, left, right, gap_h, gap_w = 0.35, 0.5, 0.95, 0.2, 0.75, 0.95
    axes_h = (fig_h - top - bottom - (nrows - 1) * gap_h) / nrows
    axes_w = (fig_w - left - right - (ncols - 1) * gap_w) / ncols
    fig.subplots_adjust(
        left=left / fig_w,
        right=1 - right / fig_w,
        top=1 - top / fig_h,
        bottom=bottom / fig_h,
        hspace=gap_h / axes_h,
        wspace=gap_w / axes_w,
    )
    for ax in axes[nplots:]:
        ax.set_visible(False)
    return fig, axes[:nplots]


def _style(ax, title, ylabel):
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def _plot_lines(path, title, ylabel, rows, keys, smooth=False):
    fig, (ax,) = _figure()
    for key in keys:
        x, y = _series(rows, key)
        if smooth and len(y) >= 20:
            (raw,) = ax.plot(x, y, alpha=0.3, linewidth=1, label=key)
            ax.plot(x, _ema(y, max(len(y) // 20, 5)), color=raw.get_color(), label=f"{key} (EMA)")
        else:
            ax.plot(x, y, marker="." if len(y) < 30 else None, label=key)
    _style(ax, title, ylabel)
    if len(keys) > 1 or smooth:
        ax.legend()
    save_figure(fig, path, dpi=110)


def _plot_other(path, rows, keys):
    ncols = 2 if len(keys) > 1 else 1
    fig, axes = _figure(len(keys), ncols, width=7.0 if ncols == 1 else 10.0, height=2.8)
    for ax, key in zip(axes, keys):
        x, y = _series(rows, key)
        ax.plot(x, y)
        _style(ax, key, "")
    save_figure(fig, path, dpi=110)


def _plot_evals(path, history, eval_keys):
    panels = {}
    for key in eval_keys:
        group, dataset, metric = key.split("/", 2)
        panels.setdefault(f"{group}/{dataset}", []).append((metric, key))
    ncols = 2 if len(panels) > 1 else 1
    fig, axes = _figure(len(panels), ncols, width=7.0 if ncols == 1 else 11.0, height=3.4)
    for ax, (panel, metrics) in zip(axes, panels.items()):
        # Recall curves: one colour per k, one line style per direction.
        recall = {m: re.fullmatch(r"(.+)_r(\d+)", m) for m, _ in metrics}
        ks = sorted({int(r.group(2)) for r in recall.values() if r})
        directions = sorted({r.group(1) for r in recall.values() if r})
        metrics = sorted(
            metrics, key=lambda mk: (recall[mk[0]] is None, _recall_order(recall[mk[0]]), mk[0])
        )
        for i, (metric, key) in enumerate(metrics):
            x, y = _series(history, key)
            style = dict(color=f"C{i % 10}")
            if recall[metric]:
                style = dict(
                    color=f"C{ks.index(int(recall[metric].group(2))) % 10}",
                    linestyle=["-", "--", ":", "-."][directions.index(recall[metric].group(1)) % 4],
                )
            ax.plot(x, y, marker="o", markersize=4, label=metric, **style)
        _style(ax, panel, "")
        values = [v for _, k in metrics for v in _series(history, k)[1]]
        if values and 0.0 <= min(values) and max(values) <= 1.0:
            ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize="small")
    save_figure(fig, path, dpi=110)


def _recall_order(match):
    return (match.group(1), int(match.group(2))) if match else ("", 0)


def _flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


CONFIG_SUMMARY_KEYS = [
    "batch_size",
    "total_steps",
    "seed",
    "data.train.dataset",
    "model.embed_dim",
    "model.image.width",
    "model.image.depth",
    "model.image.patch_size",
    "model.image.image_size",
    "model.text.width",
    "model.text.depth",
    "model.text.vocab_size",
    "model.text.max_len",
    "loss.kind",
    "loss.impl",
    "optimizer.learning_rate",
    "optimizer.schedule",
    "optimizer.warmup_steps",
    "optimizer.weight_decay",
    "optimizer.frozen",
    "mesh.data",
    "mesh.fsdp",
    "mesh.tensor",
]


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _is_eval_key(key):
    return key.count("/") >= 2


def write_report(workdir):
    """Writes DIR/report.md and DIR/plots/*.png from the run's files; returns the path."""
    rows = _by_step(read_jsonl(os.path.join(workdir, METRICS)))
    final_eval = {}
    eval_path = os.path.join(workdir, EVAL)
    if os.path.exists(eval_path):
        with open(eval_path, encoding="utf-8") as f:
            final_eval = json.load(f)
    history = _by_step(read_jsonl(os.path.join(workdir, EVAL_HISTORY)) + [final_eval])
    if not final_eval and history:
        final_eval = history[-1]
    config = None
    config_path = os.path.join(workdir, "config.json")
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)

    plots_dir = os.path.join(workdir, "plots")
    os.makedirs(plots_dir, exist_ok=True)
    lines = [f"# Run report: `{os.path.basename(os.path.abspath(workdir))}`", ""]

    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, int | float)} - {"step"})
    if rows:
        last = rows[-1]
        lines.append(f"Logged steps: {len(rows)}, last step {last['step']}.")
        if isinstance(last.get(LOSS), float):
            lines.append(f"Final loss: {last[LOSS]:.4f}.")
        _, ips = _series(rows, THROUGHPUT)
        if len(ips):
            # The first logged step usually includes compilation; leave it out of the median.
            lines.append(
                f"Median throughput: {np.median(ips[1:] if len(ips) > 1 else ips):.1f} images/s."
            )
        lines.append("")
    else:
        lines += ["No training metrics were logged.", ""]

    plots = []
    loss_keys = [k for k in keys if "loss" in k]
    if loss_keys:
        plots.append(("Loss", "loss.png", loss_keys, "loss", True))
    if LEARNING_RATE in keys:
        plots.append(
            ("Learning rate", "learning_rate.png", [LEARNING_RATE], "learning rate", False)
        )
    if THROUGHPUT in keys:
        plots.append(("Throughput", "throughput.png", [THROUGHPUT], "images/s", False))
    for title, name, plot_keys, ylabel, smooth in plots:
        _plot_lines(os.path.join(plots_dir, name), title, ylabel, rows, plot_keys, smooth)
        lines += [f"## {title}", "", f"![{title}](plots/{name})", ""]
    shown = set(loss_keys) | {LEARNING_RATE, THROUGHPUT}
    other = [k for k in keys if k not in shown][:12]
    if other:
        _plot_other(os.path.join(plots_dir, "other.png"), rows, other)
        lines += ["## Other scalars", "", "![Other scalars](plots/other.png)", ""]

    eval_keys = sorted({k for r in history for k in r if _is_eval_key(k)})
    if eval_keys:
        _plot_evals(os.path.join(plots_dir, "eval.png"), history, eval_keys)
        lines += ["## Evaluations", "", "![Evaluations](plots/eval.png)", ""]
    if final_eval:
        lines += [f"### Final evaluation (step {final_eval.get('step', '?')})", ""]
        lines += ["| group | dataset | metric | value |", "|---|---|---|---|"]
        for key in sorted(k for k in final_eval if k != "step"):
            parts = key.split("/", 2) if _is_eval_key(key) else ["", "", key]
            lines.append(f"| {' | '.join(parts)} | {_fmt(final_eval[key])} |")
        lines.append("")

    if config is not None:
        flat = _flatten(config)
        lines += ["## Config", "", "| key | value |", "|---|---|"]
        lines += [f"| `{k}` | {_fmt(flat[k])} |" for k in CONFIG_SUMMARY_KEYS if k in flat]
        lines += ["", "<details><summary>full config.json</summary>", "", "```json"]
        lines += [json.dumps(config, indent=2, sort_keys=True), "```", "", "</details>", ""]

    path = os.path.join(workdir, REPORT)
    write_text(path, "\n".join(lines))
    return path
