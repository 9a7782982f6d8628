"""`vjepa-wm bench NAME`: speed/memory benchmarks; each prints a table, `--json FILE` writes the same figures.

Every figure comes with the dense matmul rate measured in the same run (fp32 on a CPU, bf16 on a
GPU): the machines are shared, so a fraction of that rate is what compares across runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vjepa_wm.config_cli import ConfigCommand, add_config_command


@dataclass
class EncoderBench:
    """Encoder forward frames/s and matmul fraction."""

    presets: str | None = None  # comma-separated presets (null: tiny,vit_l on a CPU; tiny,vit_l,vit_g on a GPU)
    frames: int = 16  # frames per clip
    size: int = 256  # frame size
    batch: int = 1  # clips per forward pass
    repeats: int = 3  # timed runs (the median is reported)
    device: str = "auto"  # torch device: auto, cpu, cuda, cuda:N
    json: str | None = None  # also write the figures here as JSON


@dataclass
class PretrainBench:
    """Pretraining clips/s, matmul fraction and peak GPU memory."""

    presets: str | None = None  # comma-separated: tiny, vit_l, vit_g (null: tiny on a CPU; tiny,vit_l on a GPU)
    frames: int | None = None  # frames per clip (null: the first phase of the preset's shipped config)
    size: int | None = None  # frame size (null: the first phase of the preset's shipped config)
    batch: int | None = None  # clips per step (null: 8 for tiny, 24 for vit_l / vit_g)
    pretrain_config: str | None = None  # measure the model of this pretrain config instead of the shipped one
    repeats: int = 3  # timed steps (the median is reported)
    device: str = "auto"  # torch device: auto, cpu, cuda, cuda:N
    json: str | None = None  # also write the figures here as JSON


@dataclass
class DroidBench:
    """Raw-DROID decode clips/s on a CPU (a generated dataset unless --data)."""

    data: str | None = None  # raw DROID folder or episode list to read instead of a generated dataset
    sizes: str = "180x320,720x1280"  # generated resolutions, HEIGHTxWIDTH, comma-separated
    episodes: int = 8  # generated episodes per resolution
    rows: int = 120  # h5 rows (15 Hz steps) per generated episode
    workers: str = "0,2"  # DataLoader worker counts, comma-separated
    frames: int = 8  # frames per clip
    stride: int = 4  # h5 rows between sampled frames
    clips_per_episode: int = 4  # clips cut from each episode per pass
    repeats: int = 3  # timed passes (the median is reported)
    json: str | None = None  # also write the figures here as JSON


@dataclass
class ACBench:
    """AC predictor training steps/s (and raw-DROID decode clips/s)."""

    configs: str | None = None  # sim,published (null: both on a GPU, sim on a CPU)
    repeats: int = 3  # timed steps (the median is reported)
    decode: bool = True  # also measure raw-DROID decoding (what the training step consumes)
    device: str = "auto"  # torch device: auto, cpu, cuda, cuda:N
    json: str | None = None  # also write the figures here as JSON


@dataclass
class PlanBench:
    """Seconds per planned action and matmul fraction."""

    configs: str | None = None  # published,lean,sim (null: all on a GPU, sim on a CPU)
    model: str | None = None  # world model for the sim configuration (null: the bundled one)
    rope_folding: Literal["both", "on", "off"] = "both"  # on a CPU: plan with RoPE folded, plain, or both side by side
    repeats: int = 3  # timed actions (the median is reported)
    device: str = "auto"  # torch device: auto, cpu, cuda, cuda:N
    json: str | None = None  # also write the figures here as JSON


@dataclass
class NavDataBench:
    """Sim driving frames/s and nav-process bag seconds per wall second."""

    data: str | None = None  # TartanDrive bags (or a folder of them) for nav-process instead of the drives recorded here
    episodes: int = 2  # scripted drives recorded per pass
    seconds: float = 15.0  # sim seconds per drive
    width: int = 160  # camera frame width, px
    height: int = 120  # camera frame height, px
    image_hz: int = 20  # camera frames per sim second (TartanDrive: 20)
    workers: str = "1"  # process counts for both stages, comma-separated
    repeats: int = 3  # timed passes (the median is reported)
    json: str | None = None  # also write the figures here as JSON


@dataclass
class RosBench:
    """ROS 2 per-step overhead against the in-process sim, and watchdog hold latency."""

    steps: int = 20  # MPC steps (observe + apply, 1 cm moves) in-process and through the Franka bridge each
    frames: int = 60  # camera frames timed from the sim camera's publisher to RGB in the camera bridge
    trips: int = 40  # watchdog trips, alternately stopping the planner heartbeat and the camera
    image_size: int = 128  # camera image side, pixels
    real_time_factor: float = 20.0  # the sim node's simulated seconds per wall second (its rows paced by compute)
    domain_id: int | None = None  # ROS_DOMAIN_ID of the run (null: 1 + pid % 100, never a robot's 0)
    json: str | None = None  # also write the figures here as JSON


@dataclass
class GpuBench:
    """Every published-size GPU figure in one call, in a wall-time budget (JSON + README rows)."""

    dry_run: bool = False  # the same rows at tiny sizes, on one CPU thread in about a minute: proves every code path, measures nothing
    rows: str | None = None  # comma-separated rows to run (null: all; names in vjepa_wm/benchmarks/gpu_suite.py)
    budget_s: float = 480.0  # wall seconds, model construction included; a row that would end past it is skipped
    repeats: int | None = None  # timed runs per row, the median reported (null: 3, 1 in a dry run)
    compile_backend: str = "inductor"  # torch.compile backend of the compile rows (eager: the path only, in seconds)
    fail_rows: str | None = None  # comma-separated rows made to raise: shows a failed row recorded while the rest run
    device: str = "auto"  # torch device: auto, cpu, cuda, cuda:N
    json: str | None = None  # also write the figures here as JSON (rewritten after every row)
    markdown: str | None = None  # also write the README rows here (rewritten after every row)


@dataclass
class NavBench:
    """Seconds and FLOPs per navigation plan: ours (encode + CEM) and NWM's CDiT-XL budget, side by side."""

    model: str | None = None  # car world model (null: runs/train_ac/nav_sim/world_model if trained, else nav_sim-sized random weights)
    mode: Literal["nwm", "free"] = "nwm"  # our CEM's candidates: NWM's straight lines or one action per step
    samples: int = 120  # candidates per plan, both methods (NWM: 120)
    horizon: int = 8  # steps per plan / frames per NWM sample (NWM: 8)
    denoising_steps: int = 250  # NWM's DDPM steps per frame
    eval_repeats: int = 3  # NWM's stochastic repeats of each plan's evaluation
    nwm_depth: int = 28  # CDiT-XL/2
    nwm_width: int = 1152
    nwm_heads: int = 16
    nwm_image_size: int = 224  # px (NWM's config: 224 -> 28 x 28 SD-VAE latents -> 196 tokens per frame)
    nwm_batch: int | None = None  # batch of the timed CDiT forward (null: samples on a GPU, 1 on a CPU), scaled to the plan
    nwm_timed: int = 1  # timed CDiT forwards (the median is reported), after one warm-up
    repeats: int = 3  # timed plans of ours (the median is reported), after one warm-up
    device: str = "auto"  # torch device: auto, cpu, cuda, cuda:N
    json: str | None = None  # also write the figures here as JSON


def selection(text: str | None, device, gpu_default: str, cpu_default: str) -> list[str]:
    """The comma-separated names asked for, else the device's default set."""
    return [n.strip() for n in (text or (gpu_default if device.type == "cuda" else cpu_default)).split(",") if n.strip()]


def report(records: list[dict], columns: list[str], json_path: str | None) -> int:
    from vjepa_wm.benchmarks.common import print_table, write_json

    print_table(records, columns)
    write_json(json_path, records)
    return 0


def run_encoder(config: EncoderBench) -> int:
    from vjepa_wm.benchmarks import encoder
    from vjepa_wm.benchmarks.common import pick_device

    device = pick_device(config.device)
    presets = selection(config.presets, device, "tiny,vit_l,vit_g", "tiny,vit_l")
    records = encoder.run(presets, device, config.frames, config.size, config.batch, config.repeats)
    return report(records, encoder.COLUMNS, config.json)


def run_pretrain(config: PretrainBench) -> int:
    from pathlib import Path

    from vjepa_wm.benchmarks import pretrain
    from vjepa_wm.benchmarks.common import pick_device

    device = pick_device(config.device)
    presets = selection(config.presets, device, "tiny,vit_l", "tiny")
    path = Path(config.pretrain_config) if config.pretrain_config else None
    records = pretrain.run(presets, device, config.frames, config.size, config.batch, config.repeats, path)
    return report(records, pretrain.COLUMNS, config.json)


def run_droid(config: DroidBench) -> int:
    from vjepa_wm.benchmarks import droid

    workers = [int(w) for w in config.workers.split(",") if w.strip()]
    records = droid.run(config.data, droid.parse_sizes(config.sizes), config.episodes, config.rows, workers, config.frames,
                        config.stride, config.clips_per_episode, config.repeats)
    return report(records, droid.COLUMNS, config.json)


def run_ac(config: ACBench) -> int:
    from vjepa_wm.benchmarks import ac, droid
    from vjepa_wm.benchmarks.common import pick_device, print_table, write_json

    device = pick_device(config.device)
    records = ac.run(selection(config.configs, device, "sim,published", "sim"), device, config.repeats)
    print_table(records, ac.COLUMNS)
    if config.decode:
        decode = droid.run(None, [(180, 320)], 8, 120, [0], 8, 4, 4, config.repeats)
        print_table(decode, droid.COLUMNS)
        records = records + decode
    write_json(config.json, records)
    return 0


def run_plan(config: PlanBench) -> int:
    from vjepa_wm.benchmarks import plan
    from vjepa_wm.benchmarks.common import pick_device

    device = pick_device(config.device)
    folding = {"both": (True, False), "on": (True,), "off": (False,)}[config.rope_folding]
    records = plan.run(selection(config.configs, device, "published,lean,sim", "sim"), device, config.model, config.repeats,
                       folding)
    return report(records, plan.COLUMNS, config.json)


def run_nav_data(config: NavDataBench) -> int:
    from vjepa_wm.benchmarks import nav_data

    try:
        workers = [int(w) for w in config.workers.split(",") if w.strip()]
    except ValueError:
        raise ValueError(f"--workers must be comma-separated process counts, got {config.workers!r}") from None
    records = nav_data.run(config.data, config.episodes, config.seconds, config.width, config.height, config.image_hz,
                           workers, config.repeats)
    return report(records, nav_data.COLUMNS, config.json)


def run_ros(config: RosBench) -> int:
    from vjepa_wm.benchmarks import ros

    records = ros.run(config.steps, config.frames, config.trips, config.image_size, config.real_time_factor,
                      config.domain_id)
    return report(records, ros.COLUMNS, config.json)


def run_gpu(config: GpuBench) -> int:
    from vjepa_wm.benchmarks import gpu_suite

    return gpu_suite.run(config)


def run_nav(config: NavBench) -> int:
    from vjepa_wm.benchmarks import nav
    from vjepa_wm.benchmarks.common import pick_device

    device = pick_device(config.device)
    size = nav.CDiTSize(depth=config.nwm_depth, width=config.nwm_width, heads=config.nwm_heads, image_size=config.nwm_image_size)
    budget = nav.NWMBudget(config.samples, config.horizon, config.denoising_steps, config.eval_repeats)
    records = nav.run(config.model, device, config.mode, config.repeats, size, budget, config.nwm_batch, config.nwm_timed)
    report(records, nav.COLUMNS, config.json)
    print(f"NWM's plan costs {records[1]['times_ours']:.0f}x ours in seconds and {records[1]['flop_times_ours']:.0f}x in FLOPs")
    return 0


BENCHMARKS = {
    "encoder": (EncoderBench, run_encoder),
    "pretrain": (PretrainBench, run_pretrain),
    "droid": (DroidBench, run_droid),
    "ac": (ACBench, run_ac),
    "plan": (PlanBench, run_plan),
    "nav-data": (NavDataBench, run_nav_data),
    "ros": (RosBench, run_ros),
    "gpu": (GpuBench, run_gpu),
    "nav": (NavBench, run_nav),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark (encoder, pretrain, droid, ac, plan, nav-data, ros, gpu, nav)", description=__doc__)
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (config_class, run) in BENCHMARKS.items():
        doc = config_class.__doc__.strip()
        add_config_command(benchmarks, name, ConfigCommand(config_class, run), help=doc[0].lower() + doc[1:].rstrip("."),
                           description=doc)
