"""Errors a user can fix, and the exit codes the CLI gives them (one home for both).

The CLI prints a `UserError` as one or a few lines naming the problem and the fix, with no
traceback (`VLJAX_DEBUG=1` shows it), and exits with the error's `exit_code`. Anything else
is a bug in vljax and keeps its traceback. docs/reliability.md lists the codes.
"""

EXIT_OK = 0
EXIT_BUG = 1  # an unexpected exception: a bug, reported with its traceback
EXIT_CONFIG = 2  # bad config file, key, value or command-line argument
EXIT_DATA = 3  # a missing or unreadable input path, dataset or manifest
EXIT_CHECKPOINT = 4  # no checkpoint restores (or the one asked for with --step does not)
EXIT_LOCKED = 5  # another trainer holds the workdir
EXIT_EXPORT = 6  # export/import refused or failed (nothing half-written is left)
EXIT_DIVERGED = 7  # the divergence stop: too many non-finite steps in a row
EXIT_SWEEP_RUN_FAILED = 8  # `vljax sweep`: a run failed or was refused (the others ran)
EXIT_PREEMPTED = 75  # SIGTERM: a checkpoint was saved; run the same command to resume
EXIT_INTERRUPTED = 130  # Ctrl-C: a checkpoint was saved (once) or the run aborted (twice)


class UserError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""

    exit_code = EXIT_CONFIG


class ConfigError(UserError, ValueError):
    """A bad config file, key, value or argument."""

    exit_code = EXIT_CONFIG


class DataError(UserError, ValueError):
    """A missing or unreadable input: a path, a dataset, a manifest."""

    exit_code = EXIT_DATA


class CheckpointError(UserError):
    """No checkpoint of the run restores, or the one asked for does not."""

    exit_code = EXIT_CHECKPOINT


class WorkdirLockedError(UserError):
    """Another live trainer holds the workdir."""

    exit_code = EXIT_LOCKED


class ExportError(UserError):
    """An export or import that cannot be done as asked."""

    exit_code = EXIT_EXPORT


class NonFiniteError(UserError):
    """Too many non-finite updates in a row: the run cannot recover by skipping."""

    exit_code = EXIT_DIVERGED


class StoppedEarly(UserError):
    """The run saved a checkpoint and stopped before total_steps (SIGTERM or Ctrl-C)."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code
