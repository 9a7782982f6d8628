"""`vjepa-wm nav-process`: TartanDrive bags -> an NWM-format dataset with splits and eval indices.

Processes ROS 1 bags (TartanDrive 1.0 as released), ROS 2 bags with the same topics, or folders of
either, the way NWM's TartanDrive data was made: (image, odometry) pairs at 4 Hz by record time,
yaw + pi/2, backwards segments cut, 320x240 frames, trajectories named <bag folder>_<bag>_<i>;
then a seeded 80/20 train/test split and NWM's eval indices (navigation_eval.pkl: 4 context
frames, goal 8 steps ahead). Re-running with the same --out resumes: finished bags are skipped,
a folder nav-process did not write is never replaced. E.g.
  vjepa-wm nav-process /data/tartandrive/2021*_heightmaps_* --out data/tartan_drive --workers 2
"""
from __future__ import annotations

from dataclasses import dataclass

from vjepa_wm.config_cli import ConfigCommand, add_config_command, positional
from vjepa_wm.datasets.tartandrive.processing import BAG_FAILURES, NavProcessConfig


@dataclass
class NavProcessCommandConfig(NavProcessConfig):
    bags: list[str] = positional(default_factory=list, nargs="*")  # bag files, ROS 2 bag folders, or folders of them
    progress: bool = True  # show a progress bar


def run(config: NavProcessCommandConfig) -> int:
    from vjepa_wm.datasets.tartandrive.processing import process_bags

    if not config.bags:
        raise ValueError("give one or more bags (or folders of bags) to process")
    report = process_bags(config.bags, config, progress=config.progress)
    print(report.summary())
    for reason in sorted(report.failed):
        print(f"  {reason}: {BAG_FAILURES[reason]}")
    print(f"-> {config.out}")
    return 0


def register(subparsers) -> None:
    add_config_command(subparsers, "nav-process", ConfigCommand(NavProcessCommandConfig, run),
                       help="process TartanDrive bags into the NWM trajectory format", description=__doc__)
