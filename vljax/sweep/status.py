"""Where a sweep's run stands, read from its workdir: complete, interrupted or new.

The trainer's last act is report.md (vljax/train/report.py, after the final eval), and it
logs a metrics row at its last step; a run is complete when both are there for the
config's total_steps. Anything else that left files is interrupted: `vljax train` with the
same workdir resumes it from its latest checkpoint.
"""

import json
import os

from vljax.atomic_write import write_text
from vljax.train.report import METRICS, REPORT, read_jsonl

LOG = "log.txt"  # the run's stdout and stderr, appended to on every attempt
RUN_RECORD = "sweep_run.json"  # the run's name, recipe and overrides, for the summary
ATTEMPTS = "sweep_attempts.jsonl"  # one line per attempt the sweep started: seconds, exit code
SWEEP_FILES = (LOG, RUN_RECORD, ATTEMPTS)  # what the sweep, not the trainer, writes there
COMPLETE, INTERRUPTED, NEW = "complete", "interrupted", "new"


def last_logged_step(workdir: str) -> int | None:
    steps = [r["step"] for r in read_jsonl(os.path.join(workdir, METRICS)) if "step" in r]
    return max(steps) if steps else None


def run_status(workdir: str, total_steps: int) -> str:
    if not os.path.isdir(workdir):
        return NEW
    last = last_logged_step(workdir)
    if os.path.exists(os.path.join(workdir, REPORT)) and last is not None:
        if last >= total_steps:
            return COMPLETE
    trainer_files = set(os.listdir(workdir)) - set(SWEEP_FILES)
    return INTERRUPTED if trainer_files else NEW


def write_run_record(run) -> None:
    """ROOT/NAME/RUN_RECORD: what `vljax sweep summarize` shows as the run's overrides."""
    os.makedirs(run.workdir, exist_ok=True)
    record = dict(name=run.name, recipe=run.recipe, overrides=dict(run.overrides))
    write_text(os.path.join(run.workdir, RUN_RECORD), json.dumps(record, indent=2) + "\n")


def read_run_record(workdir: str) -> dict | None:
    path = os.path.join(workdir, RUN_RECORD)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)
