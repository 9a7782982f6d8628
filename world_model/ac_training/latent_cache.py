"""Pre-encoded training clips: the frozen encoder runs once per clip instead of once per epoch.

A cache is a folder of shards ``shard_PPP_SSSSS.safetensors`` (pass, index) holding ``latents``
``[n, T*N, D]`` (float16: layer-normed latents lose nothing that matters at that precision),
``states`` ``[n, T, S]`` and ``actions`` ``[n, T-1, A]``, plus ``cache.json`` recording the
key the cache was built for and how far each pass got. Filling is resumable: shards are written
atomically and a restarted fill skips the clips of the shards it already has (the clip stream is
deterministic for a given pass).

The key is everything the clips depend on: the encoder's fingerprint (weights, config, frame
size), the episodes' files (paths, sizes, modification times) and the sampling settings (clip
length, row stride, windows per episode, camera, filters, seed, passes, shard size). A cache built
for another key is refused with one line naming what changed, never reused and never rebuilt in
place (it may be another run's; deleting it is the user's call); a damaged shard is named.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

from vjepa_wm.world_model.training.fingerprint import describe_changes, weights_fingerprint

MANIFEST = "cache.json"


class CacheError(ValueError):
    """A latent cache that is missing, incomplete, damaged, or was built for other clips."""


def encoder_fingerprint(model) -> dict:
    """Identifies the encoder weights and frame size a cache (or a train-ac run) is built with."""
    return weights_fingerprint(model.encoder, model.encoder.config.to_dict(), model.img_size)


def _check_key(directory: Path, manifest: dict, key: dict) -> None:
    if "key" not in manifest:
        raise CacheError(f"{directory}: built by an older vjepa_wm that did not record its data; use another data.cache_dir")
    changes = describe_changes(manifest["key"], key)
    if changes:
        raise CacheError(f"{directory}: built for other clips ({', '.join(changes.values())}); use another data.cache_dir")


def _read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CacheError(f"{path}: unreadable cache manifest ({err})") from None


def _write_manifest(directory: Path, manifest: dict) -> None:
    partial = directory / f".{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(partial, directory / MANIFEST)


def fill_cache(
    directory: str | os.PathLike,
    model,
    batches_for_pass: Callable[[int], Iterable[dict]],
    key: dict,
    passes: int = 1,
    shard_size: int = 64,
    progress: bool = True,
) -> Path:
    """Encode every clip of `passes` passes into shards (resuming where a previous fill stopped).

    `batches_for_pass(p)` yields dicts with ``frames`` uint8 ``[B, T, H, W, 3]``, ``states``,
    ``actions``; its order must be the same every time it is called with the same `p`. `key` (JSON
    values by name, ``encoder_fingerprint(model)`` among them) is what those clips depend on.
    """
    from tqdm import tqdm

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(directory)
    if manifest:
        _check_key(directory, manifest, key)
    manifest = manifest or {"key": key, "tokens_per_frame": model.tokens_per_frame, "passes": {}}
    for p in range(passes):
        state = manifest["passes"].setdefault(str(p), {"shards": 0, "clips": 0, "done": False})
        if state["done"]:
            continue
        skip = state["shards"] * shard_size
        pending: dict[str, list[torch.Tensor]] = {"latents": [], "states": [], "actions": []}
        count = 0
        bar = tqdm(desc=f"cache pass {p}", unit="clip", disable=not progress, initial=skip)
        for batch in batches_for_pass(p):
            size = len(batch["frames"])
            if skip >= size:
                skip -= size
                continue
            frames, states, actions = batch["frames"][skip:], batch["states"][skip:], batch["actions"][skip:]
            skip = 0
            with torch.no_grad():
                pending["latents"].append(model.encode_clips(frames).to(torch.float16).cpu())
            pending["states"].append(torch.as_tensor(states, dtype=torch.float32))
            pending["actions"].append(torch.as_tensor(actions, dtype=torch.float32))
            count += len(frames)
            bar.update(len(frames))
            while count >= shard_size:
                count = _flush(directory, p, state, pending, shard_size, manifest)
        if count:
            _flush(directory, p, state, pending, count, manifest)
        state["done"] = True
        _write_manifest(directory, manifest)
        bar.close()
    return directory


def _shard_name(p: int, shard: int) -> str:
    return f"shard_{p:03d}_{shard:05d}.safetensors"


def _shard_rows(path: Path) -> int:
    """Clips in a shard; a missing, truncated or otherwise unreadable shard is a one-line error naming it."""
    try:
        with safe_open(str(path), "pt") as handle:
            return handle.get_slice("latents").get_shape()[0]
    except (SafetensorError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CacheError(f"{path}: unreadable cache shard ({reason}); rebuild the cache in another data.cache_dir") from None


def _flush(directory: Path, p: int, state: dict, pending: dict, size: int, manifest: dict) -> int:
    merged = {k: torch.cat(v) for k, v in pending.items()}
    shard = {k: v[:size].contiguous() for k, v in merged.items()}
    rest = {k: v[size:] for k, v in merged.items()}
    name = _shard_name(p, state["shards"])
    partial = directory / f".{name}.partial"
    save_file(shard, str(partial))
    os.replace(partial, directory / name)
    state["shards"] += 1
    state["clips"] += size
    _write_manifest(directory, manifest)
    for key in pending:
        pending[key] = [rest[key]] if len(rest[key]) else []
    return len(rest["latents"])


class LatentClipDataset(Dataset):
    """Map-style access to every clip of a filled cache (shards are opened lazily, memory-mapped)."""

    def __init__(self, directory: str | os.PathLike, key: dict):
        """`key`: what the clips must have been built for (as given to `fill_cache`)."""
        self.directory = Path(directory)
        manifest = _read_manifest(self.directory)
        if not manifest or not manifest.get("passes"):
            raise CacheError(f"{self.directory}: no latent cache here (run the fill first)")
        if any(not p["done"] for p in manifest["passes"].values()):
            raise CacheError(f"{self.directory}: the cache fill did not finish; run it again to resume")
        _check_key(self.directory, manifest, key)
        self.tokens_per_frame = manifest["tokens_per_frame"]
        self.index: list[tuple[Path, int]] = []
        for p, state in sorted(manifest["passes"].items(), key=lambda item: int(item[0])):
            clips = 0
            for shard in range(state["shards"]):
                path = self.directory / _shard_name(int(p), shard)
                rows = _shard_rows(path)
                self.index.extend((path, row) for row in range(rows))
                clips += rows
            if clips != state["clips"]:
                raise CacheError(f"{self.directory}: pass {p} holds {clips} clips, its record says {state['clips']}; "
                                 f"rebuild the cache in another data.cache_dir")
        if not self.index:
            raise CacheError(f"{self.directory}: the cache holds no clips")
        self._handles: dict[Path, object] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = {}  # file handles do not cross into DataLoader workers
        return state

    def __getitem__(self, item: int) -> dict:
        path, row = self.index[item]
        handle = self._handles.get(path)
        if handle is None:
            handle = self._handles[path] = safe_open(str(path), "pt")
        return {key: handle.get_slice(key)[row : row + 1][0] for key in ("latents", "states", "actions")}
