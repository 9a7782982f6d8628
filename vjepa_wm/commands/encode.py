"""`vjepa-wm encode`: video or images in, patch features out (.npy or .safetensors), with an
optional PCA picture of the features beside the input frames."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Encode a video (split into clips of --frames frames sampled at --fps) or one or more images
(each encoded on its own: T = 1) into patch features [clips, N, D], tokens in t-h-w order.
V-JEPA 2.1 encoders take images through their image tokenizer; V-JEPA 2 encoders see an image
duplicated into one tubelet."""


def add_encoder_arguments(parser: argparse.ArgumentParser) -> None:
    """--model / --random options shared by every command that needs an encoder."""
    group = parser.add_argument_group("encoder")
    group.add_argument("--model", help="checkpoint: our directory, a Hugging Face VJEPA2 directory or an official .pt")
    group.add_argument("--key", help="state-dict key inside an official .pt (default: target_encoder)")
    group.add_argument("--random", metavar="PRESET", help="use random weights of this size instead (e.g. tiny, vit_l)")
    group.add_argument("--version", choices=["2", "2.1"], default="2.1", help="family for --random (default 2.1)")
    group.add_argument("--seed", type=int, default=0, help="seed for --random weights")


def resolve_encoder(args: argparse.Namespace):
    import torch

    from world_model.checkpoints import load_encoder
    from world_model.vit import VisionTransformer, encoder_config

    if args.model and args.random:
        raise ValueError("give either --model or --random, not both")
    if args.model:
        return load_encoder(args.model, key=args.key)
    if args.random:
        torch.manual_seed(args.seed)
        print(f"note: random {args.random} weights (V-JEPA {args.version} layout); features carry no meaning", file=sys.stderr)
        return VisionTransformer(encoder_config(args.random, args.version)).eval()
    raise ValueError("no encoder: pass --model CHECKPOINT or --random PRESET")


def register(subparsers) -> None:
    parser = subparsers.add_parser("encode", help="encode a video or images into patch features", description=DESCRIPTION)
    parser.add_argument("inputs", nargs="+", help="one video file, or one or more image files")
    parser.add_argument("--out", help="features file (.npy or .safetensors)")
    parser.add_argument("--pca", metavar="PNG", help="write the first three PCA components beside the input frames")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip for videos (default 16)")
    parser.add_argument("--fps", type=float, default=4.0, help="sampling rate for videos (default 4, as in pretraining)")
    parser.add_argument("--max-clips", type=int, default=None, help="encode at most this many clips of a video")
    parser.add_argument("--crop", type=int, default=None, help="input resolution (default: the model's native size)")
    parser.add_argument("--transform", choices=["eval", "droid"], default="eval", help="eval: resize + centre crop; droid: 1.35-aspect crop squashed")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_encoder_arguments(parser)
    parser.set_defaults(func=run)


def load_inputs(paths: list[str], frames_per_clip: int, fps: float, max_clips: int | None):
    """-> list of uint8 frame stacks, one per clip (video) or per image."""
    from world_model.preprocessing import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image, read_video

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


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from world_model.features import pca_rgb
    from world_model.preprocessing import DroidTransform, EvalTransform, to_uint8_frames

    if args.out is None and args.pca is None:
        raise ValueError("nothing to write: pass --out FEATURES and/or --pca PICTURE.png")
    if args.out and Path(args.out).suffix not in (".npy", ".safetensors"):
        raise ValueError("--out must end in .npy or .safetensors")
    encoder = resolve_encoder(args).to(args.device)
    crop = args.crop or encoder.config.img_size
    transform = EvalTransform(crop) if args.transform == "eval" else DroidTransform(crop)
    clips = load_inputs(args.inputs, args.frames, args.fps, args.max_clips)
    features, pictures, grid = [], [], None
    with torch.inference_mode():
        for frames in tqdm(clips, desc="encode", unit="clip", disable=len(clips) < 2):
            video = transform(frames).unsqueeze(0).to(args.device)
            grid = encoder.grid(video.shape)
            out = encoder(video)[0].float().cpu()
            features.append(out)
            if args.pca:
                pictures.append((to_uint8_frames(video[0]), pca_rgb(out, grid)))
    stacked = torch.stack(features)
    if args.out:
        out_path = Path(args.out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if out_path.suffix == ".npy":
            np.save(out_path, stacked.numpy())
        else:
            from safetensors.torch import save_file

            save_file({"features": stacked.contiguous(), "grid": torch.tensor(grid)}, str(out_path))
        print(f"features {tuple(stacked.shape)} (grid t,h,w = {grid}) -> {out_path}")
    if args.pca:
        from vjepa_wm.pictures import save_pca_figure

        save_pca_figure(pictures[:4], args.pca, title=f"{Path(args.inputs[0]).name}: patch-feature PCA")
        print(f"PCA picture -> {args.pca}")
    return 0
