"""`vjepa-wm collect-sim`: scripted episodes in the PyBullet Franka sim, written in the DROID raw format.

Collect scripted exploration episodes (random reaches, grasps, pushes, releases; failures kept)
in the PyBullet Franka tabletop and write them in the DROID raw layout (trajectory.h5 + MP4 +
metadata), 15 Hz rows with 4 rows per action, so the DROID readers take them as they take DROID.
With --format lerobot the episodes are also written as a LeRobot v3.0 dataset in <out>/lerobot
(AV1 videos, or --lerobot-codec h264), which LeRobot's tools and `train-ac --data.format lerobot` open.
Re-running with the same --out resumes: finished episodes are skipped, never overwritten. E.g.
  vjepa-wm collect-sim --out data/sim --episodes 300 --workers 2 --image-size 128
"""
from __future__ import annotations

from dataclasses import dataclass

from vjepa_wm.config_cli import ConfigCommand, add_config_command
from vjepa_wm.sim.franka.collect import CollectConfig


@dataclass
class CollectSimConfig(CollectConfig):
    progress: bool = True  # show a progress bar


def run(config: CollectSimConfig) -> int:
    from vjepa_wm.sim.franka.collect import collect

    report = collect(config, progress=config.progress)
    failures = len(report.written) - report.successes
    print(f"wrote {len(report.written)} episodes ({report.successes} success, {failures} failure, {report.rows} rows) "
          f"in {report.seconds:.1f} s = {report.episodes_per_minute:.1f} episodes/min; "
          f"{report.skipped} already there -> {config.out}")
    if report.lerobot is not None:
        print(f"LeRobot v3.0 dataset of all episodes -> {report.lerobot}")
    return 0


def register(subparsers) -> None:
    add_config_command(subparsers, "collect-sim", ConfigCommand(CollectSimConfig, run),
                       help="collect scripted sim episodes in the DROID raw format", description=__doc__)
