"""`vljax` command line: train, eval, export, import, prepare, tokenizer.

vljax train  --config configs/X.py[:arg] --workdir DIR [--config.key=value ...]
vljax eval   --workdir DIR [--step N]
vljax export --workdir DIR [--step N] --format hf --out OUT
vljax import --hf PATH --config configs/X.py --workdir DIR
vljax prepare --manifest FILE.jsonl --name NAME --data-dir DIR
vljax tokenizer train --dataset tfds:NAME --data-dir DIR --vocab-size N --out FILE.model
"""

import argparse
import importlib.util
import os
import sys

USAGE = __doc__


def _init_distributed():
    """Joins a multi-process run when the launcher set VLJAX_* (see launch/)."""
    coordinator = os.environ.get("VLJAX_COORDINATOR")
    if not coordinator:
        return
    import jax

    if os.environ.get("VLJAX_CPU_COLLECTIVES"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=int(os.environ["VLJAX_NUM_PROCESSES"]),
        process_id=int(os.environ["VLJAX_PROCESS_ID"]),
    )


def _train(argv):
    from vljax.config import build_config, parse_overrides

    overrides, rest = parse_overrides(argv)
    parser = argparse.ArgumentParser(prog="vljax train")
    parser.add_argument("--config", required=True, help="configs/X.py[:arg] or a config.json")
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(rest)
    config = build_config(args.config, overrides)
    _init_distributed()
    from vljax.train.loop import train

    train(config, args.workdir)
    return 0


def _eval(argv):
    parser = argparse.ArgumentParser(prog="vljax eval")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--step", type=int, default=None)
    args = parser.parse_args(argv)
    from vljax.evals.run import print_results, run_evals, write_results
    from vljax.inference import load_run_encoder

    encoder = load_run_encoder(args.workdir, args.step)
    results = run_evals(encoder.run_config, encoder, encoder.step)
    write_results(args.workdir, results, final=True)
    print_results(results)
    return 0


EXPORT_EXTRA = ("torch", "transformers", "safetensors")


def _require_export_extra(command):
    """export/import need torch, transformers and safetensors, which `make demo` does not
    install (they are most of the install time)."""
    from vljax.config import ConfigError

    missing = [m for m in EXPORT_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"`vljax {command}` needs {', '.join(missing)} (the export extra); install it with "
            "`pip install -e '.[export]'` (or `make test`, which installs it)"
        )


def _export(argv):
    _require_export_extra("export")
    from vljax.export.cli import export_cli

    return export_cli(argv)


def _import(argv):
    _require_export_extra("import")
    from vljax.export.cli import import_cli

    return import_cli(argv)


def _prepare(argv):
    from vljax.data.prepare import cli

    return cli(argv)


def _tokenizer(argv):
    from vljax.data.tokenizer import cli

    return cli(argv)


COMMANDS = {
    "train": _train,
    "eval": _eval,
    "export": _export,
    "import": _import,
    "prepare": _prepare,
    "tokenizer": _tokenizer,
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"vljax: unknown command {command!r}.{hint} Commands: {', '.join(COMMANDS)}")
        return 2
    from vljax.config import ConfigError

    try:
        return COMMANDS[command](rest) or 0
    except (ConfigError, FileNotFoundError) as e:
        print(f"vljax {command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
