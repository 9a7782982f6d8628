"""`vjepa-wm encode`: video or images in, patch features out (.npy or .safetensors), with an
optional PCA picture of the features beside the input frames."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vjepa_wm.config_cli import ConfigCommand, add_config_command, positional

DESCRIPTION = """\
Encode a video (split into clips of --frames frames sampled at --fps) or one or more images
(each encoded on its own: T = 1) into patch features [clips, N, D], tokens in t-h-w order.
V-JEPA 2.1 encoders take images through their image tokenizer; V-JEPA 2 encoders see an image
duplicated into one tubelet."""


@dataclass
class EncodeConfig:
    inputs: list[str] = positional(default_factory=list, nargs="*")  # one video file, or one or more image files
    out: str | None = None  # features file (.npy or .safetensors)
    pca: str | None = None  # PNG of the first three PCA components beside the input frames
    frames: int = 16  # frames per clip for videos
    fps: float = 4.0  # sampling rate for videos (4, as in pretraining)
    max_clips: int | None = None  # encode at most this many clips of a video
    crop: int | None = None  # input resolution (null: the model's native size)
    transform: Literal["eval", "droid"] = "eval"  # eval: resize + centre crop; droid: 1.35-aspect crop squashed
    device: str = "cpu"  # torch device
    model: str | None = None  # checkpoint: our directory, a Hugging Face VJEPA2 directory, an official .pt, or a hub id (owner/name, hf://owner/name[@rev][/sub])
    key: str | None = None  # state-dict key inside an official .pt (null: target_encoder)
    random: str | None = None  # use random weights of this preset instead (e.g. tiny, vit_l)
    version: Literal["2", "2.1"] = "2.1"  # family of the random weights
    seed: int = 0  # seed of the random weights

    def __post_init__(self):
        from vjepa_wm.world_model.training.distributed import check_device

        for name in ("frames", "max_clips", "crop"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"--fps must be a positive number, got {self.fps}")
        check_device(self.device, "--device", auto=False)


def resolve_encoder(config: EncodeConfig):
    import torch

    from vjepa_wm.world_model.checkpoints import load_encoder
    from vjepa_wm.world_model.vit import VisionTransformer, encoder_config

    if config.model and config.random:
        raise ValueError("give either --model or --random, not both")
    if config.model:
        return load_encoder(config.model, key=config.key)
    if config.random:
        torch.manual_seed(config.seed)
        print(f"note: random {config.random} weights (V-JEPA {config.version} layout); features carry no meaning", file=sys.stderr)
        return VisionTransformer(encoder_config(config.random, config.version)).eval()
    raise ValueError("no encoder: pass --model CHECKPOINT or --random PRESET")


def register(subparsers) -> None:
    add_config_command(subparsers, "encode", ConfigCommand(EncodeConfig, run),
                       help="encode a video or images into patch features", description=DESCRIPTION)


def load_inputs(paths: list[str], frames_per_clip: int, fps: float, max_clips: int | None):
    """-> list of uint8 frame stacks, one per clip (video) or per image."""
    from vjepa_wm.world_model.preprocessing import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image, read_video

    suffixes = {Path(p).suffix.lower() for p in paths}
    if suffixes & VIDEO_SUFFIXES:
        if len(paths) != 1:
            raise ValueError("give one video at a time (or several images)")
        limit = frames_per_clip * max_clips if max_clips else None
        frames, _ = read_video(paths[0], fps=fps, max_frames=limit)
        if len(frames) < frames_per_clip:
            raise ValueError(f"{paths[0]}: only {len(frames)} frames at {fps} fps, fewer than --frames {frames_per_clip}")
        count = len(frames) // frames_per_clip
        return [frames[i * frames_per_clip : (i + 1) * frames_per_clip] for i in range(count)]
    unknown = sorted(suffixes - IMAGE_SUFFIXES)
    if unknown:
        raise ValueError(f"unsupported input type {unknown[0]!r} (videos: {sorted(VIDEO_SUFFIXES)}, images: {sorted(IMAGE_SUFFIXES)})")
    return [read_image(p)[None] for p in paths]


def run(config: EncodeConfig) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from vjepa_wm.world_model.features import pca_rgb
    from vjepa_wm.world_model.preprocessing import DroidTransform, EvalTransform, to_uint8_frames

    if not config.inputs:
        raise ValueError("nothing to encode: give one video file or one or more image files")
    if config.out is None and config.pca is None:
        raise ValueError("nothing to write: pass --out FEATURES and/or --pca PICTURE.png")
    if config.out and Path(config.out).suffix not in (".npy", ".safetensors"):
        raise ValueError("--out must end in .npy or .safetensors")
    encoder = resolve_encoder(config).to(config.device)
    crop = config.crop or encoder.config.img_size
    if crop % encoder.config.patch_size:
        raise ValueError(f"--crop {crop} is not a multiple of the encoder's patch size {encoder.config.patch_size}")
    transform = EvalTransform(crop) if config.transform == "eval" else DroidTransform(crop)
    clips = load_inputs(config.inputs, config.frames, config.fps, config.max_clips)
    features, pictures, grid = [], [], None
    with torch.inference_mode():
        for frames in tqdm(clips, desc="encode", unit="clip", disable=len(clips) < 2):
            video = transform(frames).unsqueeze(0).to(config.device)
            grid = encoder.grid(video.shape)
            out = encoder(video)[0].float().cpu()
            features.append(out)
            if config.pca:
                pictures.append((to_uint8_frames(video[0]), pca_rgb(out, grid)))
    stacked = torch.stack(features)
    if config.out:
        out_path = Path(config.out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if out_path.suffix == ".npy":
            np.save(out_path, stacked.numpy())
        else:
            from safetensors.torch import save_file

            save_file({"features": stacked.contiguous(), "grid": torch.tensor(grid)}, str(out_path))
        print(f"features {tuple(stacked.shape)} (grid t,h,w = {grid}) -> {out_path}")
    if config.pca:
        from vjepa_wm.pictures import save_pca_figure

        save_pca_figure(pictures[:4], config.pca, title=f"{Path(config.inputs[0]).name}: patch-feature PCA")
        print(f"PCA picture -> {config.pca}")
    return 0
