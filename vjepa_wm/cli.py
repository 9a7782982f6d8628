"""`vjepa-wm`: one entry point with subcommands.

User errors (bad paths, corrupt checkpoints, malformed inputs, bad configs) are printed as one
line and exit with status 2; set VJEPA_WM_DEBUG=1 to see the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# subcommand -> module under vjepa_wm.commands (each has `register(subparsers)`).
COMMANDS = {
    "demo": "demo",
    "encode": "encode",
    "convert": "convert",
    "bench": "bench",
    "collect-sim": "collect_sim",
    "pretrain": "pretrain",
    "plan": "plan",
    "train-ac": "train_ac",
    "eval-sim": "eval_sim",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vjepa-wm",
        description="V-JEPA world-model planning: encode, train, plan, simulate and benchmark.",
    )
    parser.add_argument("--version", action="version", version="vjepa-wm 0.1.0")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        importlib.import_module(f"vjepa_wm.commands.{module_name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("vjepa-wm: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, LookupError) as err:
        if os.environ.get("VJEPA_WM_DEBUG"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"vjepa-wm {args.command}: error: {message}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
