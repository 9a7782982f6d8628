"""`vjepa-wm train-ac`: train the action-conditioned predictor on DROID (raw episodes, RLDS, or the
LeRobot port: data.format lerobot, a folder or a hub id already in the Hugging Face cache), on
our sim recordings (which use the raw layout), or on NWM-format drives for a car (data.format nwm:
TartanDrive or sim drives through `nav-process`; held out: splits/test/traj_names.txt when present).

Settings come from --config (a YAML file or a shipped config: sim, sim_stage2, droid_vitg, nav_sim),
then from the options below. Runs on one process or under `torchrun --nproc_per_node N -m vjepa_wm
train-ac ...` (DDP; NCCL on GPUs, gloo on CPUs). With data.cache_dir the clips are encoded once
into a latent cache first. The trained model is written to <run.out_dir>/world_model in our format.

run.out_dir belongs to one run (run.json records its settings, encoder and data): a folder of
another run, or a foreign file where the run must write, is refused with one line; to resume a
run on purpose with changed settings, list them in run.resume_changed (e.g. '[optim.lr]').
A latent cache is keyed by the encoder, the episodes' files and the sampling settings; a cache
built for other clips is refused (use another data.cache_dir).
"""
from __future__ import annotations

import zlib
from pathlib import Path

from vjepa_wm.config_cli import ConfigCommand, add_config_command
from vjepa_wm.world_model.ac_training.config import ACTrainConfig


def register(subparsers) -> None:
    add_config_command(subparsers, "train-ac", ConfigCommand(ACTrainConfig, run, shipped="train_ac"),
                       help="train the action-conditioned predictor", description=__doc__)


def split_episodes(episodes: list[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """Deterministic held-out split by a hash of each episode's path (stable as the set grows)."""
    def held_out(path: Path) -> bool:
        return (zlib.crc32(str(path.resolve()).encode()) % 10_000) < fraction * 10_000

    val = [e for e in episodes if held_out(e)]
    train = [e for e in episodes if not held_out(e)]
    if not train:
        train, val = episodes, []
    return train, val


def droid_config(data, seed: int, shuffle: bool = True):
    from vjepa_wm.datasets.droid.common import DroidConfig

    return DroidConfig(frames_per_clip=data.frames_per_clip, row_stride=data.row_stride, clips_per_episode=data.clips_per_episode,
                       camera=data.camera, success_only=data.success_only, shuffle=shuffle, seed=seed)


def nav_config(data, seed: int, shuffle: bool = True):
    from vjepa_wm.datasets.tartandrive.clips import NavClipConfig

    return NavClipConfig(frames_per_clip=data.frames_per_clip, frame_stride=data.row_stride,
                         clips_per_trajectory=data.clips_per_episode, origin_frame=data.state_origin, shuffle=shuffle,
                         seed=seed)


def nav_trajectories(data) -> tuple[list[Path], list[Path]]:
    """(training, held-out) trajectory folders of an NWM dataset: its splits/train (else every
    trajectory) and data.val_path (a traj_names.txt or split folder naming trajectories of
    data.path, or another dataset folder), else its splits/test, else a `val_fraction` hash split."""
    from vjepa_wm.datasets.tartandrive.clips import split_file, trajectory_folders
    from vjepa_wm.datasets.tartandrive.nwm_format import TRAJ_NAMES

    root = Path(data.path)
    if not root.is_dir():
        raise ValueError(f"data.path {root}: no such NWM dataset folder")
    train_names = split_file(root, "train")
    train = trajectory_folders(root, train_names)
    if not train:
        raise ValueError(f"data.path {root}: no trajectories (folders holding traj_data.pkl, or names in splits/train)")
    if data.val_path:
        val_path = Path(data.val_path)
        if not val_path.exists():
            raise ValueError(f"data.val_path {val_path}: no such traj_names.txt, split folder or NWM dataset folder")
        names = val_path.is_file() or (val_path / TRAJ_NAMES).is_file()
        return train, trajectory_folders(root, val_path) if names else trajectory_folders(val_path)
    test_names = split_file(root, "test")
    if test_names is not None:
        return train, trajectory_folders(root, test_names)
    return split_episodes(train, data.val_fraction) if train_names is None else (train, [])


def clip_source(data, sources, batch_size: int, seed: int, shuffle: bool = True, embodiment=None):
    """A BatchSource over clips: DROID raw episode lists or an RLDS folder, or NWM trajectory folders
    (actions from `embodiment`, the model's car), DataLoader with workers."""
    from torch.utils.data import DataLoader

    from vjepa_wm.world_model.ac_training.trainer import BatchSource

    def make(epoch: int):
        if data.format == "nwm":
            from vjepa_wm.datasets.tartandrive.clips import NWMClipDataset, collate_nav_clips

            dataset, collate = NWMClipDataset(sources, nav_config(data, seed, shuffle), embodiment), collate_nav_clips
        elif data.format == "raw":
            from vjepa_wm.datasets.droid.common import collate_clips
            from vjepa_wm.datasets.droid.raw_reader import DroidRawDataset

            dataset, collate = DroidRawDataset(sources, droid_config(data, seed, shuffle)), collate_clips
        elif data.format == "lerobot":
            from vjepa_wm.datasets.droid.common import collate_clips
            from vjepa_wm.datasets.droid.lerobot import DroidLeRobotDataset

            dataset, collate = DroidLeRobotDataset(sources, droid_config(data, seed, shuffle)), collate_clips
        else:
            from vjepa_wm.datasets.droid.common import collate_clips
            from vjepa_wm.datasets.droid.rlds import DroidRLDSDataset

            dataset, collate = DroidRLDSDataset(sources, droid_config(data, seed, shuffle)), collate_clips
        dataset.set_epoch(epoch)
        return DataLoader(dataset, batch_size=batch_size, num_workers=data.workers, collate_fn=collate,
                          persistent_workers=False)

    return BatchSource(make)


def cache_key(config: ACTrainConfig, encoder: dict, files: list, passes: int, shuffle: bool, embodiment=None) -> dict:
    """What the clips of a latent cache depend on (named by their config keys); NWM clips also on
    the embodiment (its waypoint spacing scales the actions) and the frame their states are seen from."""
    from vjepa_wm.world_model.training.fingerprint import files_fingerprint

    data = config.data
    key = {"encoder": encoder, "episodes": files_fingerprint(files), "data.format": data.format, "data.camera": data.camera,
           "data.frames_per_clip": data.frames_per_clip, "data.row_stride": data.row_stride,
           "data.clips_per_episode": data.clips_per_episode, "data.success_only": data.success_only, "run.seed": config.run.seed,
           "data.cache_passes": passes, "data.cache_shard_size": data.cache_shard_size, "shuffled": shuffle}
    if data.format == "nwm":
        key.update({"embodiment": embodiment.to_dict(), "data.state_origin": data.state_origin})
    if data.format == "lerobot":  # episodes share files, so the files alone do not say which episodes were held out
        key.update({"data.val_path": data.val_path, "data.val_fraction": data.val_fraction})
    return key


def cached_source(directory, key: dict, batch_size: int, seed: int, rank: int, world: int):
    """A BatchSource over a filled latent cache: a seeded permutation per epoch, dealt to ranks."""
    import torch

    from vjepa_wm.world_model.ac_training.latent_cache import LatentClipDataset
    from vjepa_wm.world_model.ac_training.trainer import BatchSource

    dataset = LatentClipDataset(directory, key)

    def make(epoch: int):
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        mine = order[rank::world].tolist()
        for start in range(0, len(mine) - batch_size + 1, batch_size):
            items = [dataset[i] for i in mine[start : start + batch_size]]
            yield {key: torch.stack([item[key] for item in items]) for key in items[0]}

    return BatchSource(make)


def run(config: ACTrainConfig) -> int:
    import logging
    import os

    from vjepa_wm.world_model.ac_training.trainer import train_ac
    from vjepa_wm.world_model.training.fingerprint import files_fingerprint

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config.validate()
    data, run_cfg = config.data, config.run
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))

    if data.format == "nwm":
        train_sources, val_sources = nav_trajectories(data)
        print(f"train-ac: {len(train_sources)} training and {len(val_sources)} held-out trajectories")
        train_files, val_files = train_sources, val_sources
    elif data.format == "raw":
        from vjepa_wm.datasets.droid.raw_reader import list_raw_episodes

        episodes = list_raw_episodes(data.path)
        if data.val_path:
            train_sources, val_sources = episodes, list_raw_episodes(data.val_path)
        else:
            train_sources, val_sources = split_episodes(episodes, data.val_fraction)
        print(f"train-ac: {len(train_sources)} training and {len(val_sources)} held-out episodes")
        train_files, val_files = train_sources, val_sources
    elif data.format == "lerobot":
        from vjepa_wm.datasets.droid.lerobot import lerobot_files, split_lerobot

        train_sources, val_sources = split_lerobot(data.path, data.val_path, data.val_fraction)
        held_out = len(val_sources.locations()) if val_sources else 0
        print(f"train-ac: {len(train_sources.locations())} training and {held_out} held-out LeRobot episodes")
        train_files, val_files = lerobot_files(train_sources), lerobot_files(val_sources) if val_sources else []
    else:
        train_sources, val_sources = data.path, data.val_path
        train_files, val_files = [data.path], [data.val_path] if data.val_path else []

    def sources(model, encoder: dict):
        car = model.embodiment  # NWM actions in the model's own convention (its waypoint spacing)
        if not data.cache_dir:
            train = clip_source(data, train_sources, run_cfg.batch_size, run_cfg.seed, embodiment=car)
            return train, clip_source(data, val_sources, run_cfg.batch_size, 0, shuffle=False, embodiment=car) if val_sources else None
        from vjepa_wm.world_model.ac_training.latent_cache import fill_cache

        cache = Path(data.cache_dir)
        train_key = cache_key(config, encoder, train_files, data.cache_passes, shuffle=True, embodiment=car)
        val_key = cache_key(config, encoder, val_files, 1, shuffle=False, embodiment=car)
        if rank == 0:  # one process fills the cache; the others wait for it under torchrun
            fill_cache(cache / "train", model, clip_source(data, train_sources, 16, run_cfg.seed, embodiment=car).make, train_key,
                       data.cache_passes, data.cache_shard_size)
            if val_sources:
                fill_cache(cache / "val", model, clip_source(data, val_sources, 16, run_cfg.seed, shuffle=False, embodiment=car).make,
                           val_key, 1, data.cache_shard_size)
        if world > 1:
            _wait_for_cache(cache, bool(val_sources))
        train = cached_source(cache / "train", train_key, run_cfg.batch_size, run_cfg.seed, rank, world)
        return train, cached_source(cache / "val", val_key, run_cfg.batch_size, 0, rank, world) if val_sources else None

    target = train_ac(config, sources, files_fingerprint([*train_files, *val_files]))
    if rank == 0:
        print(f"world model -> {target}")
    return 0


def _wait_for_cache(cache: Path, with_val: bool) -> None:
    import json
    import time

    def done(folder: Path) -> bool:
        try:
            manifest = json.loads((folder / "cache.json").read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return bool(manifest.get("passes")) and all(p["done"] for p in manifest["passes"].values())

    while not (done(cache / "train") and (not with_val or done(cache / "val"))):
        time.sleep(2.0)
