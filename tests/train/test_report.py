"""metrics.jsonl / TensorBoard writing, resume truncation, and report.md."""

import glob
import json
import math
import os
import struct

import numpy as np
import pytest

from vljax.train.report import MetricsWriter, summary_writer_class, write_report


def read_rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def read_tb_scalars(workdir):
    """(tag, step, value) from the TFRecord event files, parsed by hand."""
    # tensorboardX as vljax imports it, without torch, then its protos (imported at the top,
    # they imported torch at collection: about a second in each pytest worker).
    summary_writer_class()
    from tensorboardX.proto.event_pb2 import Event

    out = []
    for path in sorted(glob.glob(os.path.join(workdir, "tensorboard", "events.*"))):
        data = open(path, "rb").read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            for v in event.summary.value:
                out.append((v.tag, event.step, v.simple_value))
    return out


def test_writes_jsonl_and_tensorboard(tmp_path):
    d = str(tmp_path / "run")
    with MetricsWriter(d, enabled=True) as w:
        w.write(0, {"loss": np.float32(2.5), "learning_rate": 0.0})
        w.write(10, {"loss": 1.25, "images_per_s": 100, "bad": float("nan")})
    rows = read_rows(d)
    assert rows == [
        {"step": 0, "loss": 2.5, "learning_rate": 0.0},
        {"step": 10, "loss": 1.25, "images_per_s": 100.0, "bad": None},
    ]
    scalars = read_tb_scalars(d)
    assert ("loss", 10, 1.25) in scalars and ("images_per_s", 10, 100.0) in scalars
    assert not [s for s in scalars if s[0] == "bad"]
    with pytest.raises(TypeError, match="scalar"):
        MetricsWriter(str(tmp_path / "x"), enabled=True).write(0, {"loss": [1.0, 2.0]})


def test_resume_truncates_later_steps(tmp_path):
    d = str(tmp_path)
    with MetricsWriter(d, enabled=True) as w:
        for step in range(0, 60, 10):
            w.write(step, {"loss": float(step)})
    with open(os.path.join(d, "metrics.jsonl"), "a") as f:
        f.write('{"step": 60, "lo')  # torn by a crash mid-write
    with MetricsWriter(d, resume_step=20, enabled=True) as w:
        w.write(30, {"loss": -1.0})
    assert [(r["step"], r["loss"]) for r in read_rows(d)] == [
        (0, 0.0),
        (10, 10.0),
        (20, 20.0),
        (30, -1.0),
    ]
    # A fresh start in a used directory keeps nothing after step 0.
    MetricsWriter(d, resume_step=0, enabled=True).close()
    assert [r["step"] for r in read_rows(d)] == [0]


def test_disabled_writer_writes_nothing(tmp_path):
    w = MetricsWriter(str(tmp_path / "run"), enabled=False)
    w.write(0, {"loss": 1.0})
    w.close()
    assert not os.path.exists(tmp_path / "run")


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_report_with_plots_table_and_config(tmp_path):
    d = str(tmp_path)
    with MetricsWriter(d, enabled=True) as w:
        for step in range(0, 200, 5):
            w.write(
                step,
                {
                    "loss": 4 * math.exp(-step / 50) + 0.5,
                    "learning_rate": 1e-3 * min(step / 20, 1),
                    "images_per_s": 300.0 + step,
                    "scale": 14.0,
                },
            )
    history = [
        {"step": 100, "zeroshot/shapes/top1": 0.4, "retrieval/shapes/txt2img_r1": 0.1},
        {"step": 195, "zeroshot/shapes/top1": 0.7, "retrieval/shapes/txt2img_r1": 0.3},
    ]
    with open(os.path.join(d, "eval_history.jsonl"), "w") as f:
        f.writelines(json.dumps(h) + "\n" for h in history)
    with open(os.path.join(d, "eval.json"), "w") as f:
        json.dump({**history[-1], "retrieval/shapes/img2txt_r5": 0.625}, f)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"batch_size": 64, "loss": {"kind": "sigmoid"}, "model": {"embed_dim": 32}}, f)

    path = write_report(d)
    text = open(path).read()
    for name in ("loss", "learning_rate", "throughput", "eval", "other"):
        png = os.path.join(d, "plots", f"{name}.png")
        assert is_png(png), name
        assert f"(plots/{name}.png)" in text
    assert "| zeroshot | shapes | top1 | 0.7 |" in text
    assert "| retrieval | shapes | img2txt_r5 | 0.625 |" in text
    assert "| `loss.kind` | sigmoid |" in text and "| `batch_size` | 64 |" in text
    assert "step 195" in text


def test_report_without_metrics(tmp_path):
    text = open(write_report(str(tmp_path))).read()
    assert "No training metrics" in text
    assert os.listdir(tmp_path / "plots") == []


def test_report_files_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """A crash while writing report.md (or a plot) leaves the previous file and no temp file."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from vljax import atomic_write

    report, plot = tmp_path / "report.md", tmp_path / "loss.png"
    atomic_write.write_text(str(report), "old report")
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    atomic_write.save_figure(fig, str(plot))
    old_plot = plot.read_bytes()
    assert old_plot.startswith(b"\x89PNG")

    def crash(src, dst):
        raise OSError("no space left on device")

    monkeypatch.setattr(atomic_write.os, "replace", crash)
    for write in (lambda: atomic_write.write_text(str(report), "new"),
                  lambda: atomic_write.save_figure(fig, str(plot))):  # fmt: skip
        try:
            write()
        except OSError:
            pass
    assert report.read_text() == "old report" and plot.read_bytes() == old_plot
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "report.md"]
