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

    pretrain = bench.add_parser("pretrain", help="pretraining clips/s, matmul fraction and peak GPU memory")
    pretrain.add_argument("--presets", default=None, help="comma-separated: tiny, vit_l, vit_g (default: tiny on CPU; tiny,vit_l on GPU)")
    pretrain.add_argument("--frames", type=int, default=None, help="default: the first phase of the preset's shipped config")
    pretrain.add_argument("--size", type=int, default=None, help="default: the first phase of the preset's shipped config")
    pretrain.add_argument("--batch", type=int, default=None, help="clips per step (default 8 for tiny, 24 for vit_l/vit_g)")
    pretrain.add_argument("--config", default=None, help="measure the model of this pretrain config instead of the shipped one")
    pretrain.add_argument("--repeats", type=int, default=3)
    pretrain.add_argument("--device", default="auto")
    pretrain.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    pretrain.set_defaults(func=run_pretrain)

    droid = bench.add_parser("droid", help="raw-DROID decode clips/s on CPU (generated dataset unless --data)")
    droid.add_argument("--data", help="raw DROID folder or episode list to read instead of a generated dataset")
    droid.add_argument("--sizes", default="180x320,720x1280", help="generated resolutions, HEIGHTxWIDTH, comma-separated")
    droid.add_argument("--episodes", type=int, default=8)
    droid.add_argument("--rows", type=int, default=120, help="h5 rows (15 Hz steps) per generated episode")
    droid.add_argument("--workers", default="0,2", help="DataLoader worker counts, comma-separated")
    droid.add_argument("--frames", type=int, default=8)
    droid.add_argument("--stride", type=int, default=4, help="h5 rows between sampled frames")
    droid.add_argument("--clips-per-episode", type=int, default=4)
    droid.add_argument("--repeats", type=int, default=3)
    droid.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    droid.set_defaults(func=run_droid)

    ac = bench.add_parser("ac", help="AC predictor training steps/s (+ raw-DROID decode clips/s)")
    ac.add_argument("--configs", default=None, help="sim,published (default: both on a GPU, sim on a CPU)")
    ac.add_argument("--repeats", type=int, default=3)
    ac.add_argument("--no-decode", action="store_true", help="skip the raw-DROID decode measurement")
    ac.add_argument("--device", default="auto")
    ac.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ac.set_defaults(func=run_ac)

    plan = bench.add_parser("plan", help="seconds per planned action and matmul fraction")
    plan.add_argument("--configs", default=None, help="published,lean,sim (default: all on a GPU, sim on a CPU)")
    plan.add_argument("--model", help="world model to use for the sim configuration (default: random weights)")
    plan.add_argument("--repeats", type=int, default=3)
    plan.add_argument("--device", default="auto")
    plan.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    plan.set_defaults(func=run_plan)


def selection(text: str | None, device, gpu_default: str, cpu_default: str) -> list[str]:
    """The comma-separated names asked for, else the device's default set."""
    return [n.strip() for n in (text or (gpu_default if device.type == "cuda" else cpu_default)).split(",") if n.strip()]


def report(records: list[dict], columns: list[str], json_path: str | None) -> int:
    from benchmarks.common import print_table, write_json

    print_table(records, columns)
    write_json(json_path, records)
    return 0


def run_droid(args: argparse.Namespace) -> int:
    from benchmarks import droid

    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    records = droid.run(args.data, droid.parse_sizes(args.sizes), args.episodes, args.rows, workers, args.frames,
                        args.stride, args.clips_per_episode, args.repeats)
    return report(records, droid.COLUMNS, args.json)


def run_ac(args: argparse.Namespace) -> int:
    from benchmarks import ac, droid
    from benchmarks.common import pick_device, print_table, write_json

    device = pick_device(args.device)
    records = ac.run(selection(args.configs, device, "sim,published", "sim"), device, args.repeats)
    print_table(records, ac.COLUMNS)
    if not args.no_decode:
        decode = droid.run(None, [(180, 320)], 8, 120, [0], 8, 4, 4, args.repeats)
        print_table(decode, droid.COLUMNS)
        records = records + decode
    write_json(args.json, records)
    return 0


def run_encoder(args: argparse.Namespace) -> int:
    from benchmarks import encoder
    from benchmarks.common import pick_device

    device = pick_device(args.device)
    presets = selection(args.presets, device, "tiny,vit_l,vit_g", "tiny,vit_l")
    records = encoder.run(presets, device, args.frames, args.size, args.batch, args.repeats)
    return report(records, encoder.COLUMNS, args.json)


def run_plan(args: argparse.Namespace) -> int:
    from benchmarks import plan
    from benchmarks.common import pick_device

    device = pick_device(args.device)
    records = plan.run(selection(args.configs, device, "published,lean,sim", "sim"), device, args.model, args.repeats)
    return report(records, plan.COLUMNS, args.json)


def run_pretrain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks import pretrain
    from benchmarks.common import pick_device

    device = pick_device(args.device)
    presets = selection(args.presets, device, "tiny,vit_l", "tiny")
    config = Path(args.config) if args.config else None
    records = pretrain.run(presets, device, args.frames, args.size, args.batch, args.repeats, config)
    return report(records, pretrain.COLUMNS, args.json)
