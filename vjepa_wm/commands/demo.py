"""`vjepa-wm demo`: the main job as it stands.

Until the simulated planning demo lands, it generates a short moving-shapes clip, encodes it with
a (random-weight) V-JEPA 2.1 tiny encoder through `vjepa-wm encode`, and writes the features and
their PCA picture.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the main demo on built-in defaults", description=__doc__)
    parser.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from datasets.moving_shapes import moving_shapes_clip
    from datasets.video_io import write_mp4
    from vjepa_wm.cli import main

    out = Path(args.out)
    clip = write_mp4(out / "moving_shapes.mp4", moving_shapes_clip(num_frames=32, size=160, seed=0), fps=4)
    print(f"clip -> {clip}")
    return main(
        [
            "encode", str(clip), "--random", "tiny", "--version", "2.1", "--frames", "16", "--fps", "4",
            "--crop", "128", "--out", str(out / "features.npy"), "--pca", str(out / "features_pca.png"),
        ]
    )
