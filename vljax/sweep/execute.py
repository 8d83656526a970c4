"""Running a sweep: skip complete runs, resume interrupted ones, start the rest, report.

Each run's output goes to ROOT/NAME/log.txt (appended: a resumed run keeps its earlier
attempts), and each attempt the sweep starts itself is one line of ROOT/NAME/ATTEMPTS
(start, seconds, exit code, command), where `vljax sweep summarize` finds the wall time.
A failing run does not stop the others; the failures are listed at the end with their logs.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from vljax.atomic_write import write_text
from vljax.errors import EXIT_CONFIG, EXIT_SWEEP_RUN_FAILED, ConfigError, UserError
from vljax.sweep import launchers
from vljax.sweep.spec import Run
from vljax.sweep.status import ATTEMPTS, COMPLETE, INTERRUPTED, run_status, write_run_record

TAIL_LINES = 3  # lines of a failed run's log shown in the final report


@dataclass
class Plan:
    """The sweep's runs sorted by what happens to them."""

    to_run: list = field(default_factory=list)  # [(Run, status)]: new or interrupted
    complete: list = field(default_factory=list)  # [Run]
    refused: list = field(default_factory=list)  # [(Run, message)]: the config does not build


def plan_runs(runs: list[Run]) -> Plan:
    plan = Plan()
    for run in runs:
        try:
            config = run.build_config()
        except UserError as e:
            plan.refused.append((run, str(e)))
            continue
        status = run_status(run.workdir, int(config.total_steps))
        if status == COMPLETE:
            plan.complete.append(run)
        else:
            plan.to_run.append((run, status))
    return plan


def select(runs: list[Run], only) -> list[Run]:
    """The runs named in `only` (all when empty); an unknown name is refused with the list."""
    if not only:
        return runs
    names = {r.name for r in runs}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ConfigError(
            f"--only {' '.join(unknown)}: no such run in this sweep; its runs are: "
            + " ".join(sorted(names))
        )
    return [r for r in runs if r.name in set(only)]


def _describe(status) -> str:
    return "interrupted: resumes from its checkpoint" if status == INTERRUPTED else "new"


def print_dry_run(plan: Plan, root: str, options: launchers.LaunchOptions):
    """The exact shell lines the sweep would run (a script: comments say why), nothing else."""
    for run in plan.complete:
        print(f"# {run.name}: complete, skipped")
    for run, message in plan.refused:
        print(f"# {run.name}: NOT RUN, its config is refused: {message}")
    if not plan.to_run:
        return
    if options.launcher == "slurm":
        tasks = os.path.join(root, launchers.SLURM_TASKS)
        print(f"# {len(plan.to_run)} array tasks; line i of {tasks} is task i")
        print(f"mkdir -p {shlex.quote(root)}")
        print(f"cat > {shlex.quote(tasks)} <<'VLJAX_TASKS'")
        for run, _ in plan.to_run:
            print(launchers.slurm_task_line(run))
        print("VLJAX_TASKS")
        print(shlex.join(launchers.slurm_submit_command(root, len(plan.to_run), options)))
        return
    if options.launcher == "tpu":
        print(shlex.join(launchers.tpu_setup_command(options)))
    for run, status in plan.to_run:
        print(f"# {run.name}: {_describe(status)}")
        command = shlex.join(launchers.run_command(run, options))
        log = shlex.quote(launchers.log_path(run))
        print(f"mkdir -p {shlex.quote(run.workdir)} && {command} >>{log} 2>&1")
    if options.launcher == "tpu" and options.tpu_delete:
        print(shlex.join(launchers.tpu_delete_command(options)))


class _Attempt:
    def __init__(self, run, status, command):
        self.run, self.status, self.command = run, status, command
        write_run_record(run)
        self.log = open(launchers.log_path(run), "a", encoding="utf-8")
        self.start = time.time()
        self.log.write(f"\n=== vljax sweep {time.strftime('%Y-%m-%d %H:%M:%S')}: ")
        self.log.write(shlex.join(command) + "\n")
        self.log.flush()
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def finish(self, code) -> float:
        seconds = time.time() - self.start
        self.log.close()
        record = dict(
            start=self.start, seconds=seconds, exit_code=code, command=shlex.join(self.command)
        )
        with open(os.path.join(self.run.workdir, ATTEMPTS), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return seconds


def _run_all(plan: Plan, options: launchers.LaunchOptions, parallel: int) -> list:
    """Starts the runs, `parallel` at once; returns the failures [(Run, exit code)]."""
    pending = list(plan.to_run)
    running, failures = [], []
    total, started = len(pending), 0
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        while pending or running:
            while pending and len(running) < parallel:
                run, status = pending.pop(0)
                started += 1
                print(f"[{started}/{total}] start {run.name} ({_describe(status)})", flush=True)
                running.append(_Attempt(run, status, launchers.run_command(run, options)))
            time.sleep(0.2)
            for attempt in list(running):
                code = attempt.process.poll()
                if code is None:
                    continue
                running.remove(attempt)
                seconds = attempt.finish(code)
                if code == 0:
                    print(f"done {attempt.run.name} in {seconds:.0f} s", flush=True)
                else:
                    failures.append((attempt.run, code))
                    print(f"FAILED {attempt.run.name} (exit {code}) in {seconds:.0f} s", flush=True)
    except KeyboardInterrupt:
        # SIGTERM: each trainer saves a checkpoint at its next step and exits; rerunning the
        # sweep resumes them.
        for attempt in running:
            attempt.process.send_signal(signal.SIGTERM)
        for attempt in running:
            code = attempt.process.wait()
            attempt.finish(code)
            failures.append((attempt.run, code))
        failures += [(run, None) for run, _ in pending]
        print("sweep: interrupted; run the same command to resume", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return failures


def _stop_on_sigterm(signum, frame):
    """SIGTERM (a scheduler's stop, `kill`) stops the sweep as Ctrl-C does: the running
    trainers are told to save and stop, not left running on their own."""
    raise KeyboardInterrupt


def _tail(path, n=TAIL_LINES) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
    except OSError:
        return []
    return lines[-n:]


def report_failures(failures, refused) -> None:
    """The failed runs, each with its exit code, log path and the log's last lines."""
    if not failures and not refused:
        return
    print(f"\nsweep: {len(failures) + len(refused)} run(s) failed:", file=sys.stderr)
    for run, message in refused:
        print(f"  {run.name}: config refused: {message}", file=sys.stderr)
        print(f"    log: {launchers.log_path(run)}", file=sys.stderr)
    for run, code in failures:
        what = "not started (interrupted)" if code is None else f"exit {code}"
        print(f"  {run.name}: {what}; log: {launchers.log_path(run)}", file=sys.stderr)
        for line in _tail(launchers.log_path(run)) if code is not None else []:
            print(f"    | {line}", file=sys.stderr)


def _record_refused(refused):
    """A refused run's log holds its config error, like any other failure's."""
    for run, message in refused:
        write_run_record(run)
        with open(launchers.log_path(run), "a", encoding="utf-8") as f:
            f.write(f"\n=== vljax sweep: the config is refused: {message}\n")
        record = dict(start=time.time(), seconds=0.0, exit_code=EXIT_CONFIG, refused=message)
        with open(os.path.join(run.workdir, ATTEMPTS), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def _submit_slurm(plan: Plan, root: str, options: launchers.LaunchOptions) -> int:
    os.makedirs(root, exist_ok=True)
    for run, _ in plan.to_run:
        write_run_record(run)
    lines = [launchers.slurm_task_line(run) for run, _ in plan.to_run]
    write_text(os.path.join(root, launchers.SLURM_TASKS), "\n".join(lines) + "\n")
    command = launchers.slurm_submit_command(root, len(plan.to_run), options)
    print(shlex.join(command), flush=True)
    return subprocess.run(command).returncode


def run_sweep(plan: Plan, root: str, options: launchers.LaunchOptions, dry_run=False) -> int:
    """Runs (or with `dry_run` prints) the plan; 0 when every run finished, else non-zero."""
    if dry_run:
        print_dry_run(plan, root, options)
        return EXIT_SWEEP_RUN_FAILED if plan.refused else 0
    print(
        f"sweep: {len(plan.complete) + len(plan.to_run) + len(plan.refused)} runs in {root}: "
        f"{len(plan.complete)} complete (skipped), "
        f"{sum(s == INTERRUPTED for _, s in plan.to_run)} to resume, "
        f"{sum(s != INTERRUPTED for _, s in plan.to_run)} new, "
        f"{len(plan.refused)} refused",
        flush=True,
    )
    _record_refused(plan.refused)
    failures = []
    if plan.to_run and options.launcher == "slurm":
        code = _submit_slurm(plan, root, options)
        if code != 0:
            print(f"sweep: sbatch exited with {code}", file=sys.stderr)
            return code
    elif plan.to_run and options.launcher == "tpu":
        setup = launchers.tpu_setup_command(options)
        print(shlex.join(setup), flush=True)
        code = subprocess.run(setup).returncode
        if code != 0:
            print(f"sweep: the TPU setup exited with {code}; no run started", file=sys.stderr)
            return code
        failures = _run_all(plan, options, parallel=1)  # one pod slice: one run at a time
        if options.tpu_delete:
            subprocess.run(launchers.tpu_delete_command(options))
    elif plan.to_run:
        failures = _run_all(plan, options, parallel=max(options.parallel, 1))
    report_failures(failures, plan.refused)
    return EXIT_SWEEP_RUN_FAILED if failures or plan.refused else 0
