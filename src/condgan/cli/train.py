"""``condgan train``: train a preset or config into a run dir (rerun to resume; under torchrun, one process per GPU)."""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from ..config import Config, ConfigError, build_config, load_yaml
from ..notices import progress_bar_wanted
from ..presets import DEFAULT_PRESET, load_preset, with_base
from ..train.smoke import DEFAULT_STEPS, smoke_config


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


def run_train(args: argparse.Namespace) -> int:
    from .. import cluster, distributed
    from ..devices import parse_device
    from ..train.stopping import REQUESTS, Stopped

    started = time.monotonic()
    cfg = resolve_config(args.preset, args.config, args.set)
    if args.smoke is not None:
        cfg = smoke_config(cfg, args.smoke)
    device = parse_device(args.device)
    REQUESTS.install()
    clean = True
    try:
        if distributed.launched_by_torchrun():  # torchrun [--nnodes=N] --nproc_per_node=G -m condgan train ...
            REQUESTS.defer = True  # from the start, every rank stops at a step they all agree on
            device = distributed.init_from_env(args.device, cfg.dist.timeout)
            cluster.start(cfg.dist.timeout)
        return _train(cfg, args, device, started)
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


def _train(cfg: Config, args: argparse.Namespace, device, started: float) -> int:
    from .. import distributed
    from ..train.runlog import duration
    from ..train.stopping import REQUESTS
    from ..train.trainer import Trainer

    is_main = distributed.world().is_main
    bar = progress_bar_wanted(args.no_progress)
    with Trainer(cfg, args.out, device=device, progress=bar, log_lines=not bar) as trainer:  # owns the run dir
        if is_main:
            _say_where_it_starts(trainer, cfg)
        trainer.train()
        distributed.barrier()  # every rank is through its last collective before the group goes
        _leave_process_group()
        REQUESTS.interrupt_if_asked()  # a signal during the last step stops the command before the report
        if not is_main:
            return 0
        print(f"training done: {trainer.step} steps in {args.out} ({duration(time.monotonic() - started)})",
              flush=True)
        if args.smoke is not None:
            print("smoke run: the set-up works; its images are noise, so nothing was evaluated")
        elif not args.no_eval:
            _final_report(trainer, args, bar)
    return 0


def _say_where_it_starts(trainer, cfg: Config) -> None:
    """The resume point, and under torchrun --max-restarts which restart this is."""
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT") or 0)
    said = f"restart {restart} of {os.environ.get('TORCHELASTIC_MAX_RESTARTS', '?')} (torchrun): " if restart else ""
    if trainer.resumed_from is not None:
        print(f"{said}resuming from {trainer.resumed_from} (step {trainer.step}/{cfg.train.steps})", flush=True)
    elif said:
        print(f"{said}no checkpoint yet: starting at step 0", flush=True)


def _final_report(trainer, args: argparse.Namespace, progress: bool = False) -> None:
    from ..files import write_text_atomic
    from ..metrics.evaluate import beyond_classifier_scale
    from ..metrics.report import final_report

    beyond = beyond_classifier_scale(trainer.run.dataset)
    if beyond:  # training a classifier on ImageNet would take hours; say which limit tripped
        print(f"end-of-training accuracy report skipped: {beyond}; score the run with: condgan eval {args.out}")
        return
    # the first report on a dataset trains its classifier (half a minute for the digits): say what the pause is
    print(f"end-of-training report: scoring {trainer.cfg.eval.num_samples} EMA-G samples with the evaluation "
          f"classifier (trained once per dataset, then cached)", flush=True)
    report = final_report(trainer, progress=progress)
    write_text_atomic(Path(args.out) / "final_eval.json", json.dumps(report, indent=2) + "\n")
    print(f"evaluation classifier accuracy on {report['real_images']} {report['real_images_are']}: "
          f"{report['real_accuracy']:.4f}")
    print(f"conditional accuracy of {report['num_samples']} EMA-G samples: {report['conditional_accuracy']:.4f} "
          f"(the same as `condgan eval {args.out} --metrics acc --num {report['num_samples']}`)")


def add_parser(sub: argparse._SubParsersAction) -> None:
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
                   help="no progress bar, a plain line every train.log_every steps instead (the default when "
                        "stderr is not a terminal: a pipe, a log file, a batch job)")
    t.add_argument("--no-eval", action="store_true", help="skip the end-of-training evaluation")
    t.add_argument("--smoke", type=int, nargs="?", const=DEFAULT_STEPS, metavar="STEPS",
                   help=f"check a set-up: train the preset STEPS steps (default {DEFAULT_STEPS}) on fabricated images "
                        "of its shape (no dataset, no download), with one sample grid and one checkpoint, no "
                        "evaluation")
    t.set_defaults(func=run_train)
