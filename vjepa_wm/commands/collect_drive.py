"""`vjepa-wm collect-drive`: scripted drives of the PyBullet off-road car, recorded as TartanDrive bags.

Drive a car the size of TartanDrive's ATV over procedural off-road terrain (hills, rocks, trees,
tall grass) with smooth random throttle and steer, turns, stops and reversing, and record each
episode as a ROS bag with TartanDrive 1.0's topics, message types and rates (camera 20 Hz,
odometry 50 Hz, /cmd 100 Hz), so `vjepa-wm nav-process` turns them into an NWM dataset exactly
as it does the real logs. Re-running with the same --out resumes: finished episodes are skipped,
never overwritten. E.g.
  vjepa-wm collect-drive --out data/sim_drive --episodes 50 --workers 2
  vjepa-wm nav-process data/sim_drive --out data/sim_drive_nwm
"""
from __future__ import annotations

from dataclasses import dataclass

from vjepa_wm.config_cli import ConfigCommand, add_config_command
from vjepa_wm.sim.driving.collect import CollectDriveConfig


@dataclass
class CollectDriveCommandConfig(CollectDriveConfig):
    progress: bool = True  # show a progress bar


def run(config: CollectDriveCommandConfig) -> int:
    from vjepa_wm.sim.driving.collect import collect

    report = collect(config, progress=config.progress)
    print(f"wrote {len(report.written)} episodes ({report.drive_seconds:.0f} s of driving, {report.frames} frames) "
          f"in {report.seconds:.1f} s = {report.frames_per_s:.1f} frames/s; {report.skipped} already there -> {config.out}")
    return 0


def register(subparsers) -> None:
    add_config_command(subparsers, "collect-drive", ConfigCommand(CollectDriveCommandConfig, run),
                       help="record scripted sim drives as TartanDrive bags", description=__doc__)
