"""`vljax` command line: train, eval, caption, export, import, prepare, tokenizer, sweep,
compile.

vljax train  --config configs/X.py[:arg] --workdir DIR [--config.key=value ...]
             [--coordinator-address HOST:PORT --num-processes N --process-id I]
vljax eval   --workdir DIR [--step N]
vljax eval   --model PATH [--model PATH2 ...] --config EVALS.py [--out FILE.md] [--step N]
vljax caption --workdir DIR [--step N] --images PATHS...   (captioning methods: CoCa)
vljax export --workdir DIR [--step N] --format hf --out OUT
vljax import --hf PATH --config configs/X.py --workdir DIR
vljax prepare --manifest FILE.jsonl --name NAME --data-dir DIR
vljax tokenizer train --dataset tfds:NAME --data-dir DIR --vocab-size N --out FILE.model
vljax sweep --config configs/ablations/X.py --workdir-root ROOT [--launcher L] [--dry-run]
vljax sweep summarize ROOT
vljax compile --config F [--config.key=value ...] --devices N [--json OUT] [--no-compile]
"""

import argparse
import difflib
import os
import sys
import traceback

from vljax.config import build_config, parse_overrides
from vljax.data.prepare import cli as prepare_cli
from vljax.errors import (
    EXIT_BUG,
    EXIT_DATA,
    EXIT_INTERRUPTED,
    ConfigError,
    StoppedEarly,
    UserError,
)
from vljax.extras import require_extra
from vljax.host_malloc import reexec_with_malloc_tunables
from vljax.sweep.cli import cli as sweep_cli

USAGE = (
    __doc__
    + """
Exit codes: 0 done, 1 a bug (with its traceback), 2 config or argument, 3 data or path,
4 checkpoint, 5 workdir in use, 6 export, 7 diverged, 8 a sweep's run failed, 75 preempted
(SIGTERM; checkpoint saved, run the same command to resume), 130 Ctrl-C. VLJAX_DEBUG=1 shows
tracebacks for every error.
"""
)


def _train(argv):
    overrides, rest = parse_overrides(argv)
    parser = argparse.ArgumentParser(prog="vljax train")
    parser.add_argument("--config", required=True, help="configs/X.py[:arg] or a config.json")
    parser.add_argument("--workdir", required=True)
    # A multi-process job (vljax/distributed.py): these, else VLJAX_*, else a detected cluster.
    parser.add_argument("--coordinator-address", help="HOST:PORT of process 0")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    args = parser.parse_args(rest)
    config = build_config(args.config, overrides)
    from vljax.distributed import init_distributed

    init_distributed(args.coordinator_address, args.num_processes, args.process_id)
    from vljax.train.loop import train

    train(config, args.workdir)
    return 0


def _eval(argv):
    parser = argparse.ArgumentParser(prog="vljax eval")
    parser.add_argument("--workdir", help="a run: its config's evals, written to DIR/eval.json")
    # Any checkpoint (vljax/evals/any_model.py): a run, an exported or a transformers folder.
    parser.add_argument("--model", action="append", help="a model to score (repeatable)")
    parser.add_argument("--config", help="--model: EVALS.py[:arg], a config with evals")
    parser.add_argument("--out", help="--model: write the table to FILE.md and FILE.json")
    parser.add_argument("--step", type=int, default=None)
    args = parser.parse_args(argv)
    if args.model:
        if args.workdir:
            raise ConfigError("vljax eval takes --workdir DIR or --model PATH, not both")
        from vljax.evals.any_model import cli

        return cli(args.model, args.config, args.out, args.step)
    if not args.workdir:
        raise ConfigError(
            "vljax eval needs --workdir DIR (a run, with its own evals) or --model PATH "
            "--config EVALS.py (any checkpoint)"
        )
    if args.config or args.out:
        raise ConfigError("--config and --out go with --model; --workdir uses the run's evals")
    from vljax.evals.run import print_results, run_evals, write_results
    from vljax.inference import load_run_encoder

    encoder = load_run_encoder(args.workdir, args.step)
    results = run_evals(encoder.run_config, encoder, encoder.step)
    write_results(args.workdir, results, final=True)
    print_results(results)
    return 0


def _caption(argv):
    from vljax.caption import cli

    return cli(argv)


def _export(argv):
    require_extra("export", "vljax export")
    from vljax.export.cli import export_cli

    return export_cli(argv)


def _import(argv):
    require_extra("export", "vljax import")
    from vljax.export.cli import import_cli

    return import_cli(argv)


def _tokenizer(argv):
    from vljax.data.tokenizer import cli

    return cli(argv)


def _compile(argv):
    from vljax.train.compile_cli import cli

    return cli(argv)


COMMANDS = {
    "train": _train,
    "eval": _eval,
    "caption": _caption,
    "export": _export,
    "import": _import,
    "prepare": prepare_cli,
    "tokenizer": _tokenizer,
    "sweep": sweep_cli,
    "compile": _compile,
}


def main(argv=None) -> int:
    if argv is None:  # the process's own command line: start it with the malloc settings
        reexec_with_malloc_tunables()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"vljax: unknown command {command!r}.{hint} Commands: {', '.join(COMMANDS)}")
        return ConfigError.exit_code
    debug = bool(os.environ.get("VLJAX_DEBUG"))
    try:
        return COMMANDS[command](rest) or 0
    except UserError as e:
        return _report(command, e, e.exit_code, debug)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        return _report(command, e, EXIT_DATA, debug)
    except KeyboardInterrupt as e:
        return _report(command, "interrupted (Ctrl-C)", EXIT_INTERRUPTED, debug, e)
    except Exception:
        traceback.print_exc()
        print(
            f"vljax {command}: unexpected error (a bug in vljax, not in your input); please "
            "report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG


def _report(command, message, code, debug, exc=None) -> int:
    """Prints a user error in a few lines (its traceback too under VLJAX_DEBUG=1)."""
    if debug:
        traceback.print_exception(exc if exc is not None else message)
    label = "stopped" if isinstance(message, StoppedEarly) else "error"
    print(f"vljax {command}: {label}: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
