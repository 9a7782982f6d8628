"""`vjepa-wm bench NAME`: speed/memory benchmarks; prints a table, `--json FILE` writes the same figures."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark (encoder, ...)", description=__doc__)
    bench = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)

    encoder = bench.add_parser("encoder", help="encoder forward frames/s and matmul fraction")
    encoder.add_argument("--presets", default=None, help="comma-separated presets (default: tiny,vit_l on CPU; vit_g on GPU)")
    encoder.add_argument("--frames", type=int, default=16)
    encoder.add_argument("--size", type=int, default=256)
    encoder.add_argument("--batch", type=int, default=1)
    encoder.add_argument("--repeats", type=int, default=3)
    encoder.add_argument("--device", default="auto")
    encoder.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    encoder.set_defaults(func=run_encoder)

    plan = bench.add_parser("plan", help="seconds per planned action and matmul fraction")
    plan.add_argument("--configs", default=None, help="published,lean,sim (default: all on a GPU, sim on a CPU)")
    plan.add_argument("--model", help="world model to use for the sim configuration (default: random weights)")
    plan.add_argument("--repeats", type=int, default=3)
    plan.add_argument("--device", default="auto")
    plan.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    plan.set_defaults(func=run_plan)


def run_encoder(args: argparse.Namespace) -> int:
    from benchmarks import encoder
    from benchmarks.common import pick_device, print_table, write_json

    device = pick_device(args.device)
    default = "tiny,vit_l,vit_g" if device.type == "cuda" else "tiny,vit_l"
    presets = [p.strip() for p in (args.presets or default).split(",") if p.strip()]
    records = encoder.run(presets, device, args.frames, args.size, args.batch, args.repeats)
    print_table(records, encoder.COLUMNS)
    write_json(args.json, records)
    return 0


def run_plan(args: argparse.Namespace) -> int:
    from benchmarks import plan
    from benchmarks.common import pick_device, print_table, write_json

    device = pick_device(args.device)
    default = "published,lean,sim" if device.type == "cuda" else "sim"
    names = [n.strip() for n in (args.configs or default).split(",") if n.strip()]
    records = plan.run(names, device, args.model, args.repeats)
    print_table(records, plan.COLUMNS)
    write_json(args.json, records)
    return 0
