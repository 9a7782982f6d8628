"""`vjepa-wm convert SRC DST`: move encoder weights between checkpoint formats.

SRC may be an official V-JEPA 2 / 2.1 .pt, a Hugging Face VJEPA2Model directory or one of our
directories; DST is written as --to ours (default), hf or official. An existing DST is never
replaced without --force.
"""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("convert", help="convert encoder checkpoints between formats", description=__doc__)
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--to", choices=["ours", "hf", "official"], default="ours", help="output format (default ours)")
    parser.add_argument("--key", help="state-dict key inside an official .pt (default: target_encoder)")
    parser.add_argument("--num-heads", type=int, help="head count, for widths that are not published sizes")
    parser.add_argument("--force", action="store_true", help="replace an existing target")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from world_model.checkpoints import export_encoder, load_encoder

    model = load_encoder(args.source, key=args.key, num_heads=args.num_heads)
    c = model.config
    path = export_encoder(model, args.target, args.to, overwrite=args.force)
    params = sum(p.numel() for p in model.parameters())
    print(f"V-JEPA {c.version} encoder {c.embed_dim}/{c.depth}/{c.num_heads} heads ({params / 1e6:.1f}M params) -> {path} [{args.to}]")
    return 0
