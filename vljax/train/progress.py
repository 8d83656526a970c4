"""Training progress: step/total, loss, images/s and ETA.

On a terminal it is a rich progress bar. Elsewhere (CI logs, `> log.txt`, SLURM output) a
redrawn bar turns into garbage, so each `update` prints one plain line instead:

    step 120/1000 (12.0%)  loss 3.4521  412.3 images/s  elapsed 0:00:31  ETA 0:03:48
"""

import sys
import time
from datetime import timedelta


def _duration(seconds):
    return str(timedelta(seconds=int(round(seconds))))


class Progress:
    """`Progress(total_steps, start_step)`; call `update(step, loss=, images_per_s=)` at
    each log step, `tick(step)` at every other step, and `close()` at the end (or use it as a
    context manager).

    enabled: None = only process 0 of a multi-host job shows progress.
    file: where to write (default sys.stdout); the bar is used only when it is a TTY.
    """

    def __init__(self, total_steps, start_step=0, *, enabled=None, file=None, description="train"):
        if enabled is None:
            import jax

            enabled = jax.process_index() == 0
        self.enabled = enabled
        self.total = int(total_steps)
        self.start_step = int(start_step)
        self.file = file if file is not None else sys.stdout
        self._bar = None
        # ETA from the rate since the first update: the first step includes compilation.
        self._t0 = time.monotonic()
        self._first = None
        if enabled and getattr(self.file, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=self.file),
            )
            self._bar.start()
            self._task = self._bar.add_task(
                description, total=self.total, completed=self.start_step, stats=""
            )

    def _eta(self, step, now):
        if self._first is None or step <= self._first[0]:
            return None
        rate = (step - self._first[0]) / max(now - self._first[1], 1e-9)
        return (self.total - step) / rate

    def update(self, step, loss=None, images_per_s=None):
        if not self.enabled:
            return
        step = int(step)
        now = time.monotonic()
        if self._first is None:
            self._first = (step, now)
        stats = []
        if loss is not None:
            stats.append(f"loss {float(loss):.4f}")
        if images_per_s is not None:
            stats.append(f"{float(images_per_s):.1f} images/s")
        if self._bar is not None:
            self._bar.update(self._task, completed=step, stats="  ".join(stats))
            return
        line = [f"step {step}/{self.total} ({100.0 * step / max(self.total, 1):.1f}%)"]
        line += stats
        line.append(f"elapsed {_duration(now - self._t0)}")
        eta = self._eta(step, now)
        line.append(f"ETA {_duration(eta) if eta is not None else '?'}")
        print("  ".join(line), file=self.file, flush=True)

    def tick(self, step):
        """Moves the terminal bar to `step` between log steps (the bar stays live); prints
        nothing in plain-line mode and reads no device value, so it never syncs the step."""
        if self._bar is not None:
            self._bar.update(self._task, completed=int(step))

    def close(self):
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
