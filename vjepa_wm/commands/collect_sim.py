"""`vjepa-wm collect-sim`: scripted episodes in the PyBullet Franka sim, written in the DROID raw format."""
from __future__ import annotations

import argparse

DESCRIPTION = """\
Collect scripted exploration episodes (random reaches, grasps, pushes, releases; failures kept)
in the PyBullet Franka tabletop and write them in the DROID raw layout (trajectory.h5 + MP4 +
metadata), 15 Hz rows with 4 rows per action, so the DROID readers take them as they take DROID.
Re-running with the same --out resumes: finished episodes are skipped, never overwritten.
Settings: the flags below, or --config YAML then --field=value overrides of CollectConfig, e.g.
  vjepa-wm collect-sim --out data/sim --episodes 300 --workers 2 --image-size 128"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "collect-sim", help="collect scripted sim episodes in the DROID raw format", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML file with CollectConfig fields")
    parser.add_argument("--out", help="output folder (default outputs/sim_droid)")
    parser.add_argument("--episodes", type=int, help="episodes the folder should hold (default 100)")
    parser.add_argument("--workers", type=int, help="parallel processes, one per core (default 1)")
    parser.add_argument("--image-size", type=int, help="square image size (default 128)")
    parser.add_argument("--full-meshes", action="store_true", help="draw the detailed Panda meshes (slower; default low-poly)")
    parser.add_argument("--wrist", action="store_true", help="also record the wrist camera")
    parser.add_argument("--seed", type=int, help="collection seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from sim.collect import CollectConfig, collect
    from world_model.configuration import load_config

    flags = {"out": args.out, "episodes": args.episodes, "workers": args.workers, "image_size": args.image_size,
             "seed": args.seed, "low_poly": False if args.full_meshes else None, "wrist_camera": True if args.wrist else None}
    config = load_config(CollectConfig, args.config, args.overrides)
    for key, value in flags.items():
        if value is not None:
            setattr(config, key, value)
    report = collect(config, progress=not args.no_progress)
    failures = len(report.written) - report.successes
    print(f"wrote {len(report.written)} episodes ({report.successes} success, {failures} failure, {report.rows} rows) "
          f"in {report.seconds:.1f} s = {report.episodes_per_minute:.1f} episodes/min; "
          f"{report.skipped} already there -> {config.out}")
    return 0
