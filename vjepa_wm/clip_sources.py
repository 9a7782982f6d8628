"""The clip sources a pretraining config may name in ``data.episodes`` (``{source: NAME, path: ...}``).

The command line hands this registry to the trainer, which never imports the dataset room itself;
a YAML can name only what is listed here, never arbitrary code.
"""
from __future__ import annotations

from vjepa_wm.datasets.droid.clip_source import RawClipSource
from vjepa_wm.datasets.droid.lerobot import LeRobotClipSource
from vjepa_wm.datasets.tartandrive.clip_source import NWMClipSource
from vjepa_wm.world_model.pretraining.data import ClipSourceRegistry

CLIP_SOURCES: ClipSourceRegistry = {
    "droid_raw": RawClipSource,  # raw DROID episodes, or our sim recordings (same layout): a folder or an episode list
    "lerobot": LeRobotClipSource,  # a LeRobot v2.1 / v3.0 dataset (folder or cached hub id); DROID's exterior_1_left, else its first camera
    "nwm": NWMClipSource,  # NWM-format drives (TartanDrive, `nav-process` output): a dataset folder, its train split if any
}
