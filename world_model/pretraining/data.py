"""Pretraining data: random clips from video folders, images from image folders, episode datasets.

Every sample is a pure function of ``(seed, stream, n)`` where ``n`` counts the samples of a
stream (video or image) since the start of the run: sample ``n`` is item ``perm_e[n mod L]`` of
an epoch permutation seeded by ``(seed, stream, e = n div L)``, cut and cropped with a generator
seeded by ``(seed, stream, n)``. So resuming needs only the step counter, any number of loader
workers gives the same batches, and a global batch split over ranks is exactly the batch one
process would draw.

An item that cannot be read (corrupt file, too short for the clip) is skipped and counted: the
sample falls through to the next item of the permutation. Only a data set with nothing readable
is an error.

Episode datasets plug in through `ClipSource` (``__len__``, ``clip(index, num_frames, fps,
generator)``, ``describe(index)``): ``data.episodes`` names a source and a path, and the caller
hands the trainer a registry of named source builders (the command line's holds the dataset
room's readers), so the trainer never imports the datasets room, and a config can name only
sources that the registry offers, never arbitrary code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import Dataset

from vjepa_wm.world_model.preprocessing import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    ImageError,
    check_frames,
    frame_step,
    normalize,
    read_image,
    read_video,
    resize,
    to_float_tensor,
)
from vjepa_wm.world_model.pretraining.config import DataConfig, EpisodeSourceConfig, PhaseConfig
from vjepa_wm.world_model.pretraining.masks import seeded_generator

VIDEO_STREAM, IMAGE_STREAM = 0, 1


def read_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "this item is unreadable", not "the program is wrong"."""
    import cv2

    return (ValueError, OSError, EOFError, cv2.error)


class DataError(ValueError):
    """A data configuration that cannot produce samples."""


@runtime_checkable
class ClipSource(Protocol):
    """Anything that yields uint8 ``[T, H, W, 3]`` RGB frames for an item index."""

    def __len__(self) -> int: ...

    def clip(self, index: int, num_frames: int, fps: float, generator: torch.Generator) -> np.ndarray: ...

    def describe(self, index: int) -> str: ...


def _files(dirs: list[str], suffixes: set[str]) -> list[Path]:
    found: list[Path] = []
    for folder in dirs:
        root = Path(folder)
        if not root.is_dir():
            raise DataError(f"{root}: no such data folder")
        found.extend(sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes))
    return found


def random_start(available: int, needed: int, generator: torch.Generator) -> int:
    return int(torch.randint(0, available - needed + 1, (1,), generator=generator))


class VideoFolder:
    """Every video file under some folders (recursively), read with OpenCV at the requested fps."""

    def __init__(self, dirs: list[str]):
        self.paths = _files(dirs, VIDEO_SUFFIXES)
        self._meta: dict[int, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def describe(self, index: int) -> str:
        return str(self.paths[index])

    def _frame_count(self, index: int) -> tuple[int, float]:
        if index not in self._meta:
            import cv2

            capture = cv2.VideoCapture(str(self.paths[index]))
            try:
                if not capture.isOpened():
                    raise ImageError(f"{self.paths[index]}: OpenCV cannot open this video")
                self._meta[index] = (int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS) or 0.0)
            finally:
                capture.release()
        return self._meta[index]

    def clip(self, index: int, num_frames: int, fps: float, generator: torch.Generator) -> np.ndarray:
        path = self.paths[index]
        count, source_fps = self._frame_count(index)
        step = frame_step(source_fps, fps)
        span = (num_frames - 1) * step + 1
        if count <= 0:  # the container does not say: decode it all and cut afterwards
            frames, _ = read_video(path, fps=fps)
            if len(frames) < num_frames:
                raise ImageError(f"{path}: {len(frames)} frames at {fps} fps, fewer than the {num_frames} a clip needs")
            start = random_start(len(frames), num_frames, generator)
            return frames[start : start + num_frames]
        if count < span:
            raise ImageError(f"{path}: {count} frames, fewer than the {span} a {num_frames}-frame clip at {fps} fps spans")
        frames, _ = read_video(path, fps=fps, max_frames=num_frames, start=random_start(count, span, generator))
        if len(frames) < num_frames:  # the container's frame count was optimistic
            raise ImageError(f"{path}: decoding stopped after {len(frames)} of {num_frames} clip frames")
        return frames


class ImageFolder:
    """Every image file under some folders (recursively); a clip is one image (T = 1)."""

    def __init__(self, dirs: list[str]):
        self.paths = _files(dirs, IMAGE_SUFFIXES)

    def __len__(self) -> int:
        return len(self.paths)

    def describe(self, index: int) -> str:
        return str(self.paths[index])

    def clip(self, index: int, num_frames: int, fps: float, generator: torch.Generator) -> np.ndarray:
        return read_image(self.paths[index])[None]


# Source name -> builder taking the configured path (e.g. {"droid_raw": RawClipSource}).
ClipSourceRegistry = Mapping[str, Callable[[str], ClipSource]]


def open_episode_source(entry: EpisodeSourceConfig, registry: ClipSourceRegistry) -> ClipSource:
    """The ClipSource that a ``data.episodes`` entry names, built by the registry's builder."""
    if entry.source not in registry:
        known = ", ".join(sorted(registry)) or "none were given"
        raise DataError(f"data.episodes: unknown clip source {entry.source!r} (known: {known})")
    source = registry[entry.source](entry.path)
    if not isinstance(source, ClipSource):
        raise DataError(f"data.episodes: {entry.source} gave {type(source).__name__}, not a ClipSource (__len__, clip, describe)")
    return source


class Pool:
    """Several sources seen as one list of items."""

    def __init__(self, sources: list[ClipSource]):
        self.sources = [s for s in sources if len(s)]
        self.offsets = np.cumsum([0] + [len(s) for s in self.sources])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, item: int) -> tuple[ClipSource, int]:
        which = int(np.searchsorted(self.offsets, item, side="right")) - 1
        return self.sources[which], item - int(self.offsets[which])


@dataclass(frozen=True)
class Crop:
    """Random resized crop (area fraction and aspect ranges, as torchvision draws them) + flip."""

    size: int
    scale: tuple[float, float] = (0.3, 1.0)
    aspect: tuple[float, float] = (0.75, 1.35)
    flip: bool = True

    def box(self, height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int]:
        area = height * width
        log_low, log_high = math.log(self.aspect[0]), math.log(self.aspect[1])
        for _ in range(10):
            target = area * (self.scale[0] + torch.rand(1, generator=generator).item() * (self.scale[1] - self.scale[0]))
            ratio = math.exp(log_low + torch.rand(1, generator=generator).item() * (log_high - log_low))
            w = int(round(math.sqrt(target * ratio)))
            h = int(round(math.sqrt(target / ratio)))
            if 0 < w <= width and 0 < h <= height:
                return random_start(height, h, generator), random_start(width, w, generator), h, w
        ratio = width / height  # fallback: the largest centred crop inside the aspect range
        if ratio < self.aspect[0]:
            w, h = width, int(round(width / self.aspect[0]))
        elif ratio > self.aspect[1]:
            w, h = int(round(height * self.aspect[1])), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, frames: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        frames = check_frames(frames)
        top, left, h, w = self.box(frames.shape[1], frames.shape[2], generator)
        video = resize(to_float_tensor(frames[:, top : top + h, left : left + w]), self.size, self.size)
        if self.flip and torch.rand(1, generator=generator).item() < 0.5:
            video = video.flip(-1)
        return normalize(video)


@dataclass(frozen=True)
class SampleKey:
    """Which sample to make: stream, its running number, frames per clip and crop size."""

    stream: int
    number: int
    frames: int
    crop: int


class PretrainSamples(Dataset):
    """Map `SampleKey` -> (tensor ``[3, T, crop, crop]``, list of skipped item descriptions)."""

    def __init__(self, config: DataConfig, seed: int, videos: Pool | None, images: Pool | None):
        self.config = config
        self.seed = seed
        self.pools = {VIDEO_STREAM: videos, IMAGE_STREAM: images}
        self._perms: dict[tuple[int, int], torch.Tensor] = {}
        self._unreadable: dict[tuple[int, int], str] = {}  # (stream, item) -> why; not read again

    def _order(self, stream: int, epoch: int, size: int) -> torch.Tensor:
        key = (stream, epoch)
        if key not in self._perms:
            self._perms = {k: v for k, v in self._perms.items() if k[0] != stream}  # one epoch cached per stream
            self._perms[key] = torch.randperm(size, generator=seeded_generator(self.seed, epoch, 1000 + stream))
        return self._perms[key]

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, list[str]]:
        pool = self.pools[key.stream]
        if pool is None or len(pool) == 0:
            kind = "video" if key.stream == VIDEO_STREAM else "image"
            raise DataError(f"no {kind} files found in the configured data folders")
        size = len(pool)
        order = self._order(key.stream, key.number // size, size)
        generator = seeded_generator(self.seed, key.number, 2000 + key.stream)
        crop = Crop(key.crop, tuple(self.config.crop_scale), tuple(self.config.crop_aspect), self.config.horizontal_flip)
        skipped: list[str] = []
        unreadable = read_errors()
        for offset in range(size):
            item = int(order[(key.number + offset) % size])
            if (key.stream, item) in self._unreadable:
                skipped.append(self._unreadable[key.stream, item])
                continue
            source, index = pool.locate(item)
            try:
                frames = source.clip(index, key.frames, self.config.fps, generator)
                return crop(frames, generator), skipped
            except unreadable as err:
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                name = source.describe(index)
                self._unreadable[key.stream, item] = reason if reason.startswith(name) else f"{name}: {reason}"
                skipped.append(self._unreadable[key.stream, item])
        raise DataError(f"none of the {size} items could be read; first problem: {skipped[0]}")


@dataclass
class Batch:
    """One rank's share of one step: video clips and images (either may be None) and skip reports."""

    video: torch.Tensor | None
    image: torch.Tensor | None
    skipped: list[str]


def collate(items: list[tuple[SampleKey, tuple[torch.Tensor, list[str]]]]) -> Batch:
    groups: dict[int, list[torch.Tensor]] = {VIDEO_STREAM: [], IMAGE_STREAM: []}
    skipped: list[str] = []
    for key, (tensor, skips) in items:
        groups[key.stream].append(tensor)
        skipped.extend(skips)
    stack = {s: torch.stack(t) if t else None for s, t in groups.items()}
    return Batch(stack[VIDEO_STREAM], stack[IMAGE_STREAM], skipped)


class KeyedSamples(Dataset):
    """Wraps `PretrainSamples` so the loader's collate function also sees each key."""

    def __init__(self, samples: PretrainSamples):
        self.samples = samples

    def __getitem__(self, key: SampleKey):
        return key, self.samples[key]


def phase_at(phases: list[PhaseConfig], step: int) -> tuple[int, PhaseConfig]:
    """(index, phase) of the phase that contains `step`."""
    end = 0
    for index, phase in enumerate(phases):
        end += phase.steps
        if step < end:
            return index, phase
    raise ValueError(f"step {step} lies beyond the {end} steps of the configured phases")


def samples_before(phases: list[PhaseConfig], step: int, stream: int) -> int:
    """How many samples of `stream` (global, all ranks) the steps before `step` consumed."""
    total, start = 0, 0
    for phase in phases:
        per_step = phase.batch_size if stream == VIDEO_STREAM else phase.image_batch_size
        done = min(phase.steps, max(0, step - start))
        total += done * per_step
        start += phase.steps
    return total


class StepKeys:
    """Batch sampler: for each step from `start`, the keys of this rank's share of the global batch."""

    def __init__(self, phases: list[PhaseConfig], start: int, stop: int, rank: int, world_size: int):
        self.phases, self.start, self.stop = phases, start, stop
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return self.stop - self.start

    def keys(self, step: int) -> list[SampleKey]:
        _, phase = phase_at(self.phases, step)
        keys = []
        for stream, batch, crop, frames in (
            (VIDEO_STREAM, phase.batch_size, phase.crop, phase.frames),
            (IMAGE_STREAM, phase.image_batch_size, phase.image_crop or phase.crop, 1),
        ):
            share = batch // self.world_size
            first = samples_before(self.phases, step, stream) + self.rank * share
            keys.extend(SampleKey(stream, first + i, frames, crop) for i in range(share))
        return keys

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for step in range(self.start, self.stop):
            yield self.keys(step)


def build_pools(config: DataConfig, registry: ClipSourceRegistry | None = None) -> tuple[Pool, Pool]:
    episodes = [open_episode_source(entry, registry or {}) for entry in config.episodes]
    images = [ImageFolder(config.image_dirs)] + (episodes if config.episode_images else [])
    return Pool([VideoFolder(config.video_dirs)] + episodes), Pool(images)


def make_loader(config: DataConfig, phases: list[PhaseConfig], seed: int, start: int, rank: int, world_size: int,
                registry: ClipSourceRegistry | None = None):
    """A DataLoader of `Batch`es for steps ``start .. end of the phases``, this rank's share."""
    videos, images = build_pools(config, registry)
    if any(p.batch_size for p in phases) and len(videos) == 0:
        raise DataError(f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) under {config.video_dirs} or in data.episodes")
    if any(p.image_batch_size for p in phases) and len(images) == 0:
        raise DataError(f"no image files under {config.image_dirs} (nor episode frames: data.episode_images)")
    total = sum(p.steps for p in phases)
    return torch.utils.data.DataLoader(
        KeyedSamples(PretrainSamples(config, seed, videos, images)),
        batch_sampler=StepKeys(phases, start, total, rank, world_size),
        collate_fn=collate,
        num_workers=config.num_workers,
        # its own generator: creating the iterator must not draw from the global RNG (exact resume)
        generator=torch.Generator().manual_seed(seed),
    )
