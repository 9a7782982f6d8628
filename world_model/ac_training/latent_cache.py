"""Pre-encoded training clips: the frozen encoder runs once per clip instead of once per epoch.

A cache is a folder of shards ``shard_PPP_SSSSS.safetensors`` (pass, index) holding ``latents``
``[n, T*N, D]`` (float16: layer-normed latents lose nothing that matters at that precision),
``states`` ``[n, T, S]`` and ``actions`` ``[n, T-1, A]``, plus ``cache.json`` recording the
encoder it was built with and how far each pass got. Filling is resumable: shards are written
atomically and a restarted fill skips the clips of the shards it already has (the clip stream is
deterministic for a given pass). A cache built with a different encoder is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

MANIFEST = "cache.json"


class CacheError(ValueError):
    """A latent cache that is missing, incomplete, or was built with another encoder."""


def encoder_fingerprint(model) -> str:
    """Identifies the encoder weights and frame size a cache was built with."""
    digest = hashlib.sha256(json.dumps(model.encoder.config.to_dict(), sort_keys=True).encode())
    digest.update(str(model.img_size).encode())
    with torch.no_grad():
        for name, tensor in sorted(model.encoder.state_dict().items()):
            digest.update(name.encode())
            digest.update(f"{float(tensor.double().sum()):.10e}".encode())
    return digest.hexdigest()[:16]


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
    passes: int = 1,
    shard_size: int = 64,
    progress: bool = True,
) -> Path:
    """Encode every clip of `passes` passes into shards (resuming where a previous fill stopped).

    `batches_for_pass(p)` yields dicts with ``frames`` uint8 ``[B, T, H, W, 3]``, ``states``,
    ``actions``; its order must be the same every time it is called with the same `p`.
    """
    from tqdm import tqdm

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fingerprint = encoder_fingerprint(model)
    manifest = _read_manifest(directory)
    if manifest and manifest.get("encoder") != fingerprint:
        raise CacheError(f"{directory}: built with a different encoder or frame size; use another cache_dir")
    manifest = manifest or {"encoder": fingerprint, "tokens_per_frame": model.tokens_per_frame, "passes": {}}
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


def _flush(directory: Path, p: int, state: dict, pending: dict, size: int, manifest: dict) -> int:
    merged = {k: torch.cat(v) for k, v in pending.items()}
    shard = {k: v[:size].contiguous() for k, v in merged.items()}
    rest = {k: v[size:] for k, v in merged.items()}
    name = f"shard_{p:03d}_{state['shards']:05d}.safetensors"
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

    def __init__(self, directory: str | os.PathLike, model=None):
        self.directory = Path(directory)
        manifest = _read_manifest(self.directory)
        if not manifest or not manifest.get("passes"):
            raise CacheError(f"{self.directory}: no latent cache here (run the fill first)")
        if any(not p["done"] for p in manifest["passes"].values()):
            raise CacheError(f"{self.directory}: the cache fill did not finish; run it again to resume")
        if model is not None and manifest["encoder"] != encoder_fingerprint(model):
            raise CacheError(f"{self.directory}: built with a different encoder or frame size")
        self.tokens_per_frame = manifest["tokens_per_frame"]
        self.index: list[tuple[Path, int]] = []
        for path in sorted(self.directory.glob("shard_*.safetensors")):
            with safe_open(str(path), "pt") as handle:
                rows = handle.get_slice("latents").get_shape()[0]
            self.index.extend((path, row) for row in range(rows))
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
