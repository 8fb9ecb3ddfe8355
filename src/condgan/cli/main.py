"""Command line: the parser, exit codes and one-line errors; each subcommand lives in its own module here."""
from __future__ import annotations

import argparse
import os
import signal
import sys

from .. import __version__
from ..config import ConfigError


class _Parser(argparse.ArgumentParser):
    """argparse with condgan's one-line errors (exit 2) instead of a usage block; ``--help`` shows the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        _fail(f"{message} (see `{self.prog} --help`)", 2)
        sys.exit(2)


def make_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="condgan", description="Train and evaluate class-conditional GANs.")
    p.add_argument("--version", action="version", version=f"condgan {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    from . import eval, import_studiogan, plot, prepare, presets, reproduce, sample, train

    train.add_parser(sub)
    eval.add_parser(sub)
    sample.add_parser(sub)
    plot.add_parser(sub)
    prepare.add_parser(sub)
    presets.add_parsers(sub)
    reproduce.add_parser(sub)
    import_studiogan.add_parser(sub)
    return p


# What Ctrl-C leaves, per command
AFTER_INTERRUPT = {
    "train": "rerun the same command to resume from the last checkpoint",
    "prepare": "the finished chunks are kept: rerun the same command to finish the store",
    "reproduce": "finished rows are kept: rerun the same command to go on",
    "sample": "nothing was written (the output is written whole at the end)",
    "eval": "nothing was written (the record is written whole at the end)",
}


def main(argv: list[str] | None = None) -> int:
    from ..cluster import FailedOnMain, RankFailed
    from ..notices import print_warnings_as_lines
    from ..train.stopping import Interrupted, Stopped, exit_code

    print_warnings_as_lines()
    args = make_parser().parse_args(argv)
    try:
        code = args.func(args)
        if sys.stdout is not None:  # None when started with stdout closed (>&-): print() then writes nothing
            sys.stdout.flush()  # a closed pipe fails here, inside the handlers, not at interpreter exit
        return code
    except Stopped as e:  # every rank stopped at one step; rank 0 wrote its checkpoint and says so
        return _fail(str(e), exit_code(e.signum), prefix="condgan: ", quiet=not _is_rank_zero())
    except RankFailed as e:
        return _fail(str(e), EXIT_RANK_FAILED, quiet=e.quiet)
    except FailedOnMain as e:  # rank 0 says what went wrong
        return _fail(str(e), _error_code(e.error) or 1, quiet=True)
    except BrokenPipeError:  # `condgan presets | head`: the reader left; say nothing more
        _silence_stdout()
        return 141
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
        name = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
        print(f"condgan: interrupted{name}; {AFTER_INTERRUPT.get(args.command, 'rerun the same command')}",
              file=sys.stderr)
        return exit_code(signum)
    except Exception as e:
        code = _error_code(e)
        if code is None:
            raise
        # the same error on every rank (a config, a diverged run) is said once, by rank 0
        same_everywhere = code == EXIT_DIVERGED or isinstance(e, ConfigError)
        return _fail(describe_os_error(e) if isinstance(e, OSError) else str(e), code,
                     quiet=same_everywhere and not _is_rank_zero())


# Exit codes besides 0 (and 1, a bug's traceback); a stop signal exits with 128 + its number (train.stopping)
EXIT_BAD_INPUT = 2  # a one-line error naming the culprit
EXIT_DIVERGED = 3  # non-finite losses or model state: the last good checkpoint is kept
EXIT_RANK_FAILED = 4  # under torchrun: another rank died, stopped answering or failed


def _error_code(e: BaseException) -> int | None:
    """The exit code of an error condgan explains in one line (None: a bug, with its traceback)."""
    from ..data import DataError
    from ..metrics.errors import EvalError
    from ..train.checkpoint import CheckpointError
    from ..train.trainer import TrainingDiverged

    if isinstance(e, (ConfigError, DataError, CheckpointError, EvalError)):
        return EXIT_BAD_INPUT
    if isinstance(e, TrainingDiverged):
        return EXIT_DIVERGED
    if isinstance(e, OSError) and not isinstance(e, BrokenPipeError):  # disk full, read-only, permissions
        return EXIT_BAD_INPUT
    return None


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


def describe_os_error(e: OSError) -> str:
    """``<what went wrong>: <file>`` in one line."""
    what = e.strerror or " ".join(str(e).split()) or type(e).__name__
    where = f": {e.filename}" if e.filename else ""
    return f"{what}{where}" + (f" -> {e.filename2}" if getattr(e, "filename2", None) else "")


def _fail(message: str, code: int, prefix: str = "condgan: error: ", quiet: bool = False) -> int:
    if not quiet:
        print(f"{prefix}{' '.join(message.split())}", file=sys.stderr)
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise BrokenPipeError again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    if sys.stdout is not None:
        os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
