"""Command line: the parser, ``condgan`` train, eval, sample, plot, prepare, presets, reproduce and config."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from ..config import Config, ConfigError, build_config, load_yaml, to_yaml
from .. import __version__
from ..presets import DEFAULT_PRESET, list_presets, load_preset, with_base



def resolve_config(preset: str | None, config_file: str | None, overrides: list[str]) -> Config:
    """Preset or config file (over the preset its ``base:`` names, if any), then ``--set`` overrides."""
    if preset and config_file:
        raise ConfigError("give either --preset or --config, not both")
    if not config_file:
        return build_config(load_preset(preset or DEFAULT_PRESET), overrides)
    tree = load_yaml(config_file)  # its own errors name the file
    try:
        tree = with_base(tree)
    except ConfigError as e:
        raise ConfigError(f"config file {config_file}: {e}") from None
    return build_config(tree, overrides)


def _cmd_train(args: argparse.Namespace) -> int:
    from .. import cluster, distributed
    from ..devices import parse_device
    from ..train.stopping import REQUESTS, Stopped

    cfg = resolve_config(args.preset, args.config, args.set)
    device = parse_device(args.device)
    REQUESTS.install()
    clean = True
    try:
        if distributed.launched_by_torchrun():  # torchrun [--nnodes=N] --nproc_per_node=G -m condgan train ...
            REQUESTS.defer = True  # from the start, every rank stops at a step they all agree on
            device = distributed.init_from_env(args.device, cfg.dist.timeout)
            cluster.start(cfg.dist.timeout)
        return _train(cfg, args, device)
    except Stopped:  # every rank stopped at the same step: the group is whole
        raise
    except Exception as e:
        clean = False
        if cluster.is_collective_failure(e):
            raise cluster.diagnose(e) from None
        cluster.announce_failure(e)  # ranks waiting for this one learn at once
        raise
    finally:
        _leave_process_group(destroy=clean)
        REQUESTS.restore()


def _leave_process_group(destroy: bool = True) -> None:
    """Stop the heartbeat and leave the process group (torchrun); signals interrupt at once from here on.

    After a failure the group is left as it is (the process exits): tearing down a group whose peers are gone
    can block."""
    from .. import cluster, distributed
    from ..train.stopping import REQUESTS

    cluster.stop()
    if destroy:
        distributed.shutdown()
    REQUESTS.defer = False


def _train(cfg: Config, args: argparse.Namespace, device) -> int:
    from .. import distributed
    from ..train.stopping import REQUESTS
    from ..train.trainer import Trainer

    is_main = distributed.world().is_main
    with Trainer(cfg, args.out, device=device, progress=not args.no_progress,
                 log_lines=args.no_progress) as trainer:  # owns the run dir
        if is_main:
            _say_where_it_starts(trainer, cfg)
        trainer.train()
        distributed.barrier()  # every rank is through its last collective before the group goes
        _leave_process_group()
        REQUESTS.interrupt_if_asked()  # a signal during the last step stops the command before the report
        if not is_main:
            return 0
        print(f"training done: {trainer.step} steps in {args.out}")
        if not args.no_eval:
            _final_report(trainer, args)
    return 0


def _say_where_it_starts(trainer, cfg: Config) -> None:
    """The resume point, and under torchrun --max-restarts which restart this is."""
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT") or 0)
    said = f"restart {restart} of {os.environ.get('TORCHELASTIC_MAX_RESTARTS', '?')} (torchrun): " if restart else ""
    if trainer.resumed_from is not None:
        print(f"{said}resuming from {trainer.resumed_from} (step {trainer.step}/{cfg.train.steps})", flush=True)
    elif said:
        print(f"{said}no checkpoint yet: starting at step 0", flush=True)


def _final_report(trainer, args: argparse.Namespace) -> None:
    from ..files import write_text_atomic
    from ..metrics.evaluate import beyond_classifier_scale
    from ..metrics.report import final_report

    beyond = beyond_classifier_scale(trainer.run.dataset)
    if beyond:  # training a classifier on ImageNet would take hours; say which limit tripped
        print(f"end-of-training accuracy report skipped: {beyond}; score the run with: condgan eval {args.out}")
        return
    report = final_report(trainer, progress=not args.no_progress)
    write_text_atomic(Path(args.out) / "final_eval.json", json.dumps(report, indent=2) + "\n")
    print(f"evaluation classifier accuracy on {report['real_images']} {report['real_images_are']}: "
          f"{report['real_accuracy']:.4f}")
    print(f"conditional accuracy of {report['num_samples']} EMA-G samples: {report['conditional_accuracy']:.4f}")


def _cmd_presets(args: argparse.Namespace) -> int:
    if not args.show:
        presets = list_presets()
        width = max(map(len, presets))
        for name, (row, desc) in presets.items():
            print(f"{name:<{width}}  {desc}")
            if row:
                print(f"{'':<{width}}  reproduces: {row}")
        return 0
    cfg = build_config(load_preset(args.show), args.set)
    print(to_yaml(cfg), end="")
    from ..data.registry import KNOWN_SHAPES

    shape = KNOWN_SHAPES.get(cfg.data.name)
    if shape:
        from ..nets import build_nets, count_parameters

        g, d = build_nets(cfg, *shape)
        print(f"# parameters: G {count_parameters(g):,}  D {count_parameters(d):,}  "
              f"({shape[0]} classes, {shape[1]} channels)")
    return 0


def _cmd_config_keys(args: argparse.Namespace) -> int:
    from ..config.docs import key_docs

    docs = [d for d in key_docs() if d.key.startswith(args.prefix)]
    if not docs:
        raise ConfigError(f"no config key starts with '{args.prefix}'")
    width = max(len(d.key) for d in docs)
    for d in docs:
        default = _yaml_value(d.default)
        choices = f"  {{{', '.join(repr(c) if c == '' else c for c in d.choices)}}}" if d.choices else ""
        print(f"{d.key:<{width}}  {d.type} = {default}{choices}  {d.meaning}")
    return 0


def _yaml_value(value: object) -> str:
    """A value as it would be written in a config file or after --set (null, true, "", 0.0002)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return '""' if value == "" else str(value)


class _Parser(argparse.ArgumentParser):
    """argparse with condgan's one-line errors (exit 2) instead of a usage block; ``--help`` shows the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        _fail(f"{message} (see `{self.prog} --help`)", 2)
        sys.exit(2)


def make_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="condgan", description="Train and evaluate class-conditional GANs.")
    p.add_argument("--version", action="version", version=f"condgan {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model (rerun the same command to resume; under torchrun: "
                                     "one process per GPU)")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--preset", help=f"a shipped preset (default {DEFAULT_PRESET}); see `condgan presets`")
    src.add_argument("--config", help="a YAML config file")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    t.add_argument("--out", required=True, help="run directory (created, or resumed if it exists)")
    t.add_argument("--device", default="cpu",
                   help="cpu, cuda or cuda:N (default cpu); under torchrun cuda means cuda:LOCAL_RANK")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bar; a plain line every train.log_every steps instead (for batch jobs' logs)")
    t.add_argument("--no-eval", action="store_true", help="skip the end-of-training evaluation")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("presets", help="list presets, or show one resolved")
    s.add_argument("--show", metavar="NAME", help="print the resolved config and parameter counts")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.set_defaults(func=_cmd_presets)

    c = sub.add_parser("config", help="about the config: `condgan config keys` lists every key")
    c_sub = c.add_subparsers(dest="config_command", required=True)
    k = c_sub.add_parser("keys", help="every config key with its type, default, choices and meaning")
    k.add_argument("prefix", nargs="?", default="", help="only keys starting with this (e.g. loss.)")
    k.set_defaults(func=_cmd_config_keys)

    from .eval import add_parser as add_eval_parser
    from .import_studiogan import add_parser as add_import_parser
    from .prepare import add_parser as add_prepare_parser
    from .reproduce import add_parser as add_reproduce_parser
    from .plot import add_parser as add_plot_parser
    from .sample import add_parser as add_sample_parser

    add_eval_parser(sub)
    add_prepare_parser(sub)
    add_reproduce_parser(sub)
    add_sample_parser(sub)
    add_plot_parser(sub)
    add_import_parser(sub)
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
