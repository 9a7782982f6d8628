"""`vjepa-wm pretrain`: V-JEPA 2 / 2.1 self-supervised pretraining from a YAML config."""
from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Pretrain a V-JEPA 2.1 (or 2) encoder and predictor on folders of videos / images.
Settings come from --config YAML, then from --section.field=value overrides, e.g.
  vjepa-wm pretrain --config configs/pretrain/tiny_sim.yaml --data.video_dirs='[data/sim]' --run.out_dir=runs/a
Runs under torchrun for several processes (NCCL on GPUs, gloo on CPUs); batch sizes are global.
A run resumes from the latest checkpoint in run.out_dir (run.resume=auto); at the end the target
encoder and the predictor are written to OUT/encoder and OUT/predictor in vjepa_wm format."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain", help="self-supervised V-JEPA pretraining", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="YAML config (see configs/pretrain/)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    import yaml

    from world_model.configuration import load_config, to_dict
    from world_model.pretrain import pretrain
    from world_model.pretrain_config import PretrainConfig

    config = load_config(PretrainConfig, args.config, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
        return 0
    result = pretrain(config)
    if result.encoder_dir is not None:  # the main process reports
        last = f"{result.history[-1][1]:.4f}" if result.history else "-"
        print(
            f"pretrained {result.steps} steps (last loss {last}, {result.skipped} unreadable samples skipped, "
            f"{result.collapse_warnings} collapse warnings)\n"
            f"encoder -> {result.encoder_dir}\npredictor -> {result.predictor_dir}\ncheckpoint -> {result.checkpoint}",
            file=sys.stdout,
        )
    return 0
