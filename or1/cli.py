"""The ``or1`` command line: train, eval, export, report, and the data and study tools."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from or1.errors import Or1Error

USAGE_OVERRIDES = (
    "settings as dotted key=value overrides, e.g. algo.clip_high=0.265 "
    "rollout.temperature=0.6 stages.0.max_response_length=64 train.max_steps=5"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="or1", description="Skywork-OR1 (MAGIC) RL training.")
    sub = parser.add_subparsers(dest="command")
    train = sub.add_parser("train", help="run the MAGIC loop (default preset: tiny-arith)")
    train.add_argument("--preset", default="tiny-arith", help="preset name or YAML file")
    train.add_argument("--resume", type=Path, help="continue the run in this directory")
    train.add_argument(
        "--fallback-to-verified",
        action="store_true",
        help="with --resume: if the latest checkpoint is damaged, resume from the newest "
        "one that verifies (else a damaged checkpoint is an error)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument(
        "--dry-run",
        action="store_true",
        help="check config, data, model, benchmarks and run directory; train nothing",
    )
    train.add_argument("overrides", nargs="*", help=USAGE_OVERRIDES)
    config = sub.add_parser("config", help="print the resolved config (YAML) of a preset")
    config.add_argument("--preset", default="tiny-arith", help="preset name or YAML file")
    config.add_argument("overrides", nargs="*", help=USAGE_OVERRIDES)
    ev = sub.add_parser("eval", help="avg@k / pass@k of a checkpoint or a base model")
    ev.add_argument("--preset", default="tiny-arith")
    ev.add_argument("--checkpoint", type=Path, help="run dir, ckpt/latest or ckpt/step_N")
    ev.add_argument("--out", type=Path, help="output directory (default: runs/eval-<time>)")
    ev.add_argument("--quiet", action="store_true")
    ev.add_argument("overrides", nargs="*", help=USAGE_OVERRIDES)
    export = sub.add_parser("export", help="a clean HF model directory of a checkpoint")
    export.add_argument("source", type=Path, help="run dir, ckpt/latest or ckpt/step_N")
    export.add_argument("out", type=Path, help="the new model directory")
    rep = sub.add_parser("report", help="plots and report.html of a run")
    rep.add_argument("run_dir", type=Path)
    sub.add_parser("presets", help="list the shipped presets")
    from or1.study import add_arguments as add_study_arguments

    add_study_arguments(sub.add_parser("study", help="the entropy study (paper findings)"))
    from or1.plan.report import add_arguments as add_plan_arguments

    add_plan_arguments(sub.add_parser("plan", help="memory per GPU of a run (no weights loaded)"))
    from or1.data.cli import add_data_commands

    add_data_commands(sub)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from or1.config import check_trainable, load_config, load_saved_config
    from or1.errors import ConfigError
    from or1.rundir import CONFIG_FILE, probe_writable, refuse_existing, run_dir_for
    from or1.trainer import Trainer

    if args.fallback_to_verified and args.resume is None:
        raise ConfigError("--fallback-to-verified applies to --resume RUN only.")
    if args.resume is not None:
        cfg = load_saved_config(args.resume / CONFIG_FILE, args.overrides)
        run_dir = args.resume
    else:
        cfg = load_config(args.preset, args.overrides)
        check_trainable(cfg)
        run_dir = run_dir_for(cfg)
        refuse_existing(run_dir)
    if args.dry_run:
        from or1.dryrun import dry_run

        resume, fallback = args.resume is not None, args.fallback_to_verified
        print("\n".join(dry_run(cfg, run_dir, resume=resume, fallback=fallback)))
        return 0
    probe_writable(run_dir)  # now, not after the data, model and warm-up are ready
    from or1.plan import preflight

    preflight(cfg)  # vLLM can start here; the memory plan of a model.path run
    with Trainer(cfg, run_dir, show_progress=not args.quiet and cfg.logging.progress) as trainer:
        summary = trainer.run(resume=args.resume, fallback=args.fallback_to_verified)
    from or1.report import write_report

    report = write_report(run_dir)
    print(json.dumps(summary, indent=1))
    print(f"report: {report}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Print the whole resolved config tree (defaults included) as YAML; loadable as a
    preset file (``or1 train --preset that.yaml``)."""
    import yaml

    from or1.config import load_config

    cfg = load_config(args.preset, args.overrides)
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from or1.config import load_config
    from or1.evaluate import run_eval

    overrides = list(args.overrides)
    if args.checkpoint is not None:
        from or1.checkpoint import load_checkpoint

        overrides.append(f"model.path={load_checkpoint(args.checkpoint).model_dir}")
    cfg = load_config(args.preset, overrides)
    out = args.out or Path(cfg.runs_dir) / f"eval-{time.strftime('%Y%m%d-%H%M%S')}"
    result = run_eval(cfg, out, show=not args.quiet)
    print(json.dumps(result, indent=1))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from or1.export import export_checkpoint

    print(export_checkpoint(args.source, args.out))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from or1.report import write_report

    print(write_report(args.run_dir))
    return 0


def cmd_presets(_: argparse.Namespace) -> int:
    from or1.config import preset_names

    print("\n".join(preset_names()))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from or1.data.cli import cmd_data as run

    return run(args)


def cmd_plan(args: argparse.Namespace) -> int:
    from or1.plan.report import main as run

    return run(args)


def cmd_study(args: argparse.Namespace) -> int:
    from or1.study import main as run

    return run(args)


COMMANDS = {
    "study": cmd_study,
    "plan": cmd_plan,
    "train": cmd_train,
    "config": cmd_config,
    "eval": cmd_eval,
    "export": cmd_export,
    "report": cmd_report,
    "presets": cmd_presets,
    "data": cmd_data,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args = parser.parse_args(argv or ["train"])
    if args.command is None:
        args = parser.parse_args(["train", *argv])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "transformers", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-shard save/load bars drown ours
    try:
        return COMMANDS[args.command](args)
    except Or1Error as err:
        print(f"or1: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "or1: interrupted; the last checkpoint is intact (resume with --resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
