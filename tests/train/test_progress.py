"""Progress: plain lines when not on a terminal, a rich bar when on one."""

import io

from vljax.train import progress as progress_mod
from vljax.train.progress import Progress


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_plain_lines_when_not_a_tty(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(progress_mod.time, "monotonic", clock)
    out = io.StringIO()
    p = Progress(100, start_step=10, enabled=True, file=out)
    clock.now += 30  # compile + first step
    p.update(20, loss=3.14159, images_per_s=250.04)
    clock.now += 10  # 10 steps in 10 s -> 80 steps left = 80 s
    p.update(30, loss=2.5)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "step 20/100 (20.0%)  loss 3.1416  250.0 images/s  elapsed 0:00:30  ETA ?",
        "step 30/100 (30.0%)  loss 2.5000  elapsed 0:00:40  ETA 0:01:10",
    ]


def test_disabled_prints_nothing():
    out = io.StringIO()
    with Progress(10, enabled=False, file=out) as p:
        p.update(1, loss=1.0)
    assert out.getvalue() == ""


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_rich_bar_on_a_tty():
    out = FakeTTY()
    with Progress(50, start_step=0, enabled=True, file=out) as p:
        p.update(25, loss=1.5, images_per_s=99.0)
    text = out.getvalue()
    assert "25/50" in text and "loss 1.5000" in text and "99.0 images/s" in text
    assert "step 25/50 (" not in text  # not the plain-line format


def test_tick_moves_the_bar_between_log_steps_and_prints_no_plain_line():
    out = FakeTTY()
    with Progress(50, start_step=0, enabled=True, file=out) as p:
        p.update(10, loss=1.5, images_per_s=99.0)
        p.tick(37)
    assert "37/50" in out.getvalue()
    plain = io.StringIO()
    with Progress(50, start_step=0, enabled=True, file=plain) as p:
        p.tick(37)
    assert plain.getvalue() == ""
