"""Short digests of what a run or a latent cache is made from, and one-line descriptions of how two differ.

Why: a resumed run and a reused latent cache must be fed what they were built from. Comparing
digests of the inputs is cheap where comparing the inputs is not: files are fingerprinted by
path, size and modification time (no reading), weights by their bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

import torch


def files_fingerprint(paths: Iterable[str | os.PathLike]) -> dict:
    """Digest of every file under `paths` (a path may be a file or a folder, searched recursively;
    names starting with a dot, such as partial files, are skipped): each file's absolute path,
    size and modification time. Also counts the paths, files and bytes, to name a difference."""
    digest = hashlib.sha256()
    count = files = size = 0
    for root in paths:
        root = Path(root).absolute()
        count += 1
        if root.is_file():
            found = [root]
        elif root.is_dir():
            found = []
            for folder, dirs, names in os.walk(root, followlinks=True):  # walk ignores folders that vanish or deny listing
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(Path(folder, name) for name in sorted(names) if not name.startswith("."))
        else:
            digest.update(f"{root}\0missing\n".encode())
            continue
        for path in found:
            try:
                stat = path.stat()
            except OSError:  # gone since it was listed, or not ours to look at: not part of the data
                continue
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            files, size = files + 1, size + stat.st_size
    return {"digest": digest.hexdigest()[:16], "paths": count, "files": files, "bytes": size}


def weights_fingerprint(module: torch.nn.Module, *described_by) -> dict:
    """Digest of a module's weights (names, dtypes, shapes and bytes) and of the JSON values in
    `described_by` (its config, the frame size it is used at)."""
    digest = hashlib.sha256(json.dumps(described_by, sort_keys=True).encode())
    with torch.no_grad():
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\n".encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return {"digest": digest.hexdigest()[:16]}


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_changes(old: dict, new: dict) -> dict[str, str]:
    """For every key whose value differs: a short description, ``optim.lr 0.0004 -> 0.001`` for a
    setting, ``data (4 -> 1 paths)`` for a files fingerprint, ``encoder`` for a weights one."""
    changes = {}
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, "(not recorded)"), new.get(key, "(not recorded)")
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict) and "digest" in before and "digest" in after:
            counts = [f"{before[n]} -> {after[n]} {n}" for n in ("paths", "files") if n in before and before[n] != after.get(n)]
            changes[key] = f"{key} ({counts[0]})" if counts else (f"{key} (files changed)" if "files" in after else key)
        else:
            changes[key] = f"{key} {_short(before)} -> {_short(after)}"
    return changes
