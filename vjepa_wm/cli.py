"""`vjepa-wm`: one entry point with subcommands.

Each subcommand lives in `vjepa_wm.commands.<name>` and is one typed dataclass config (its options and
``--help`` are generated from the fields, see `vjepa_wm.config_cli`); the heavy parts of its rooms
(PyBullet, TensorFlow, checkpoints) are imported only when it runs. User errors (bad paths, corrupt checkpoints, malformed
inputs, bad configs) are printed as one line and exit with status 2; set VJEPA_WM_DEBUG=1 to see
the traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys

from vjepa_wm import __version__
from vjepa_wm.commands import (
    bench,
    collect_drive,
    collect_sim,
    convert,
    demo,
    encode,
    eval_sim,
    export_hub,
    nav_drive,
    nav_process,
    nav_replay,
    plan,
    pretrain,
    ros_goal,
    ros_launch,
    train_ac,
)

COMMANDS = (demo, encode, convert, bench, collect_sim, pretrain, plan, train_ac, eval_sim, collect_drive, nav_process, nav_replay,
            ros_launch, ros_goal, nav_drive, export_hub)

# FFmpeg prints its own line for a broken video ("moov atom not found") beside our one-line error;
# it reads this once, when OpenCV first opens a video in the process, so it is set before any can be.
if not os.environ.get("VJEPA_WM_DEBUG"):
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vjepa-wm",
        description="V-JEPA world-model planning: encode, train, plan, simulate and benchmark.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"vjepa-wm {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:  # argparse's usage line + one error line, exit status 2
        parser.error(f"unrecognized arguments: {' '.join(extra)}" if extra else "a command is required (vjepa-wm --help lists them)")
    args.extra = extra
    name = " ".join(filter(None, [args.command, getattr(args, "benchmark", None)]))
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("vjepa-wm: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, LookupError, ArithmeticError) as err:
        if os.environ.get("VJEPA_WM_DEBUG"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if isinstance(err, ArithmeticError):  # "division by zero" alone would not say what failed
            message = f"{type(err).__name__}: {message}"
        print(f"vjepa-wm {name}: error: {message}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
