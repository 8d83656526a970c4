"""`vljax sweep summarize ROOT`: one row per run of a sweep, as a table and plots.

Reads each ROOT/NAME's files: the sweep's record of its overrides (sweep_run.json), the
trainer's config.json, metrics.jsonl (final loss, last step, images/s, training time),
eval.json (final evals), and the sweep's attempts (wall time, local launchers only). Writes
ROOT/summary.md (best value of each metric in bold), ROOT/summary.csv and
ROOT/plots/{metrics,loss_curves}.png.
"""

import csv
import io
import json
import math
import os
import re

import numpy as np
from rich.console import Console
from rich.progress import track

from vljax.atomic_write import save_figure, write_text
from vljax.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED, DataError
from vljax.sweep.status import (
    ATTEMPTS,
    COMPLETE,
    LOG,
    RUN_RECORD,
    read_run_record,
    run_status,
)
from vljax.train.report import EVAL, METRICS, read_jsonl

SUMMARY_MD, SUMMARY_CSV, PLOTS = "summary.md", "summary.csv", "plots"
FINAL_LOSS, STEPS, IMAGES_PER_S = "final_loss", "steps", "images_per_s"
TRAIN_S, WALL_S = "train_s", "wall_s"
NOT_PLOTTED = (STEPS, WALL_S)  # the same for every run, or the sweep's bookkeeping

# Which way is better, by the metric's name; metrics matching neither are not bolded.
LOWER_IS_BETTER = re.compile(r"loss")
HIGHER_IS_BETTER = re.compile(r"(_r\d+$|acc|top\d|recall|bleu|cider|images_per_s)")


def better(metric: str) -> str | None:
    """'higher', 'lower' or None (no best value is marked)."""
    if LOWER_IS_BETTER.search(metric):
        return "lower"
    if HIGHER_IS_BETTER.search(metric):
        return "higher"
    return None


def _read_json(path):
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_run(workdir: str) -> dict:
    """One run's row: name, status, overrides and figures (None where not recorded)."""
    record = read_run_record(workdir) or {}
    config = _read_json(os.path.join(workdir, "config.json"))
    rows = [r for r in read_jsonl(os.path.join(workdir, METRICS)) if "step" in r]
    by_step = {}
    for r in rows:
        by_step.setdefault(int(r["step"]), {}).update(r)
    steps = sorted(by_step)
    losses = [by_step[s]["loss"] for s in steps if isinstance(by_step[s].get("loss"), float)]
    throughput = [(s, by_step[s].get(IMAGES_PER_S)) for s in steps]
    throughput = [(s, v) for s, v in throughput if isinstance(v, float) and v > 0]
    # Each logged row's images/s covers the steps since the previous row; their sum is the
    # training loop's time (compiles, checkpoints and periodic evals included).
    batch = config.get("batch_size")
    train_s = None
    if batch and throughput:
        previous, train_s = 0, 0.0
        for s, ips in throughput:
            train_s += (s - previous) * batch / ips
            previous = s
    # The first window holds the compile: left out of the median, as in report.md.
    ips_values = [v for _, v in throughput]
    ips = float(np.median(ips_values[1:] if len(ips_values) > 1 else ips_values or [math.nan]))
    attempts = read_jsonl(os.path.join(workdir, ATTEMPTS))
    evals = {k: v for k, v in _read_json(os.path.join(workdir, EVAL)).items() if k != "step"}
    total = config.get("total_steps")
    status = run_status(workdir, int(total)) if total else "not started"
    last = attempts[-1] if attempts else {}
    stopped = last.get("exit_code") in (EXIT_PREEMPTED, EXIT_INTERRUPTED)  # saved: resumes
    if status != COMPLETE and last.get("exit_code") and not stopped:
        status = "refused" if "refused" in last else f"failed (exit {last['exit_code']})"
    return dict(
        name=os.path.basename(os.path.normpath(workdir)),
        status=status,
        overrides=record.get("overrides", {}),
        recipe=record.get("recipe"),
        curve=[(s, by_step[s]["loss"]) for s in steps if isinstance(by_step[s].get("loss"), float)],
        metrics={
            STEPS: steps[-1] if steps else None,
            FINAL_LOSS: losses[-1] if losses else None,
            **evals,
            IMAGES_PER_S: None if math.isnan(ips) else ips,
            TRAIN_S: train_s,
            WALL_S: sum(a.get("seconds", 0.0) for a in attempts) if attempts else None,
        },
    )


def find_runs(root: str) -> list[str]:
    if not os.path.isdir(root):
        raise DataError(f"{root!r} is not a folder; give the --workdir-root of a sweep")
    markers = (RUN_RECORD, "config.json", LOG)
    dirs = [
        os.path.join(root, d)
        for d in sorted(os.listdir(root))
        if any(os.path.exists(os.path.join(root, d, m)) for m in markers)
    ]
    if not dirs:
        raise DataError(
            f"{root} holds no runs (folders with {RUN_RECORD}, config.json or {LOG}); "
            "give the --workdir-root that `vljax sweep` ran in"
        )
    return dirs


def _columns(runs):
    """(override keys, metric names) in a stable order: metrics as first seen."""
    keys, metrics = [], []
    for run in runs:
        keys += [k for k in run["overrides"] if k not in keys]
        metrics += [m for m in run["metrics"] if m not in metrics]
    return keys, metrics


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _best(runs, metric):
    direction = better(metric)
    # Only complete runs compete: a run stopped early has partial figures.
    values = [r["metrics"].get(metric) for r in runs if r["status"] == COMPLETE]
    values = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if direction is None or len(values) < 2:
        return None
    return max(values) if direction == "higher" else min(values)


def markdown_table(runs) -> str:
    keys, metrics = _columns(runs)
    header = ["run", "status", *keys, *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {m: _best(runs, m) for m in metrics}
    for run in runs:
        cells = [f"`{run['name']}`", run["status"]]
        cells += [run["overrides"].get(k, "") for k in keys]
        for metric in metrics:
            value = run["metrics"].get(metric)
            text = _fmt(value)
            won = run["status"] == COMPLETE and value == best[metric]
            if best[metric] is not None and won:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(runs) -> str:
    keys, metrics = _columns(runs)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["run", "status", *keys, *metrics])
    for run in runs:
        values = [run["metrics"].get(m) for m in metrics]
        row = [run["name"], run["status"], *[run["overrides"].get(k, "") for k in keys]]
        writer.writerow(row + ["" if v is None else v for v in values])
    return out.getvalue()


def _swept_keys(runs):
    """Override keys whose value differs between runs (the ones a plot's x-axis shows)."""
    keys, _ = _columns(runs)
    return [k for k in keys if len({r["overrides"].get(k) for r in runs}) > 1]


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def write_plots(runs, plots_dir) -> list[str]:
    """metrics.png (each metric against the first swept key, one line per value of the
    others) and loss_curves.png (every run's loss against step), of the complete runs;
    returns the file names."""
    # matplotlib only here: the rest of the sweep code (and `vljax train`) never needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    os.makedirs(plots_dir, exist_ok=True)
    written = []
    runs = [r for r in runs if r["status"] == COMPLETE]  # a failed run's figures are partial
    swept = _swept_keys(runs)
    _, metrics = _columns(runs)
    plotted = [
        m
        for m in metrics
        if m not in NOT_PLOTTED and any(isinstance(r["metrics"].get(m), int | float) for r in runs)
    ]
    if plotted:
        x_key = swept[0] if swept else None
        x_values = [r["overrides"].get(x_key, r["name"]) if x_key else r["name"] for r in runs]
        numeric = all(_number(v) is not None for v in x_values)
        categories = list(dict.fromkeys(x_values))
        ncols = 2 if len(plotted) > 1 else 1
        nrows = math.ceil(len(plotted) / ncols)
        fig = Figure(figsize=(5.5 * ncols, 3.2 * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[len(plotted) :]:
            ax.set_visible(False)
        for ax, metric in zip(axes, plotted):
            groups = {}
            for run, x in zip(runs, x_values):
                label = ", ".join(
                    f"{k}={run['overrides'][k]}" for k in swept[1:] if k in run["overrides"]
                )
                value = run["metrics"].get(metric)
                if isinstance(value, int | float):
                    xpos = _number(x) if numeric else categories.index(x)
                    groups.setdefault(label, []).append((xpos, value))
            for label, points in groups.items():
                points.sort()
                # Categories (e.g. loss.impl) have no order to draw a line along.
                style = "-" if numeric else "none"
                ax.plot(*zip(*points), marker="o", linestyle=style, label=label or None)
            if not numeric:
                ax.set_xticks(range(len(categories)), categories, rotation=20, fontsize="small")
            ax.set_title(metric)
            ax.set_xlabel(x_key or "run")
            ax.grid(True, alpha=0.3)
            if len(groups) > 1:
                ax.legend(fontsize="x-small")
        save_figure(fig, os.path.join(plots_dir, "metrics.png"), dpi=100)
        written.append("metrics.png")
    if any(r["curve"] for r in runs):
        fig = Figure(figsize=(7, 4), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        for run in runs:
            if run["curve"]:
                ax.plot(*zip(*run["curve"]), label=run["name"], linewidth=1.2)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title("Loss")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
        save_figure(fig, os.path.join(plots_dir, "loss_curves.png"), dpi=100)
        written.append("loss_curves.png")
    return written


def summarize(root: str) -> str:
    """Writes ROOT/summary.md, summary.csv and plots/; returns the markdown's path."""
    dirs = find_runs(root)
    console = Console(stderr=True)
    runs = [read_run(d) for d in track(dirs, "reading runs", console=console, transient=True)]
    table = markdown_table(runs)
    plots = write_plots(runs, os.path.join(root, PLOTS))
    lines = [f"# Sweep summary: `{os.path.basename(os.path.abspath(root))}`", "", table]
    lines.append(
        f"Best value of each metric in bold (lower {FINAL_LOSS}, higher recalls, accuracy "
        f"and {IMAGES_PER_S}). {TRAIN_S}: the training loop's time from metrics.jsonl "
        f"(compiles included); {WALL_S}: the attempts the sweep started itself."
    )
    lines.append("")
    lines += [f"![{p}]({PLOTS}/{p})" for p in plots]
    path = os.path.join(root, SUMMARY_MD)
    write_text(path, "\n".join(lines) + "\n")
    write_text(os.path.join(root, SUMMARY_CSV), csv_text(runs))
    return path
