"""Training-state checkpoints (pretraining and train-ac): written atomically, never over an existing file, read with weights_only.

A checkpoint is one ``.pt`` file holding only tensors and plain Python values (model, EMA and
optimizer state dicts, the step, RNG states as uint8 tensors, data counters, the config as a
dict), so ``torch.load(weights_only=True)`` reads it back. It is written to a hidden partial
file and renamed into place; a name that already exists gets a suffix instead of being
replaced. ``latest.txt`` names the newest complete checkpoint; older ones are pruned only after
a newer one is complete.

Every checkpoint belongs to its run (an `Owner`, the run folder of
`world_model.training.run_folder`): it is claimed before it is written, and pruning and resuming
consider only the run's own checkpoints, so a file someone else put in ``checkpoints/`` (even one
named like a checkpoint) is never loaded or deleted.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

import torch

from vjepa_wm.world_model.checkpoints.io import CheckpointError, check_format_version, safe_torch_load

FORMAT = "vjepa_wm-train-state"  # pretraining and train-ac checkpoints alike
FORMAT_VERSION = 1
LATEST = "latest.txt"
_NAME = re.compile(r"^step_(\d{8})(?:\.r(\d+))?\.pt$")


class Owner(Protocol):
    """Which files a run wrote: it claims a file before writing it and releases one it deleted."""

    def owns(self, path: Path) -> bool: ...

    def claim(self, *paths: Path) -> None: ...

    def release(self, path: Path) -> None: ...


def rng_state() -> dict:
    """This process's torch RNG states as tensors (CPU, and every CUDA device if present)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _checkpoints(directory: Path, owner: Owner) -> list[tuple[int, int, Path]]:
    found = []
    for path in directory.glob("step_*.pt"):
        match = _NAME.match(path.name)
        if match and owner.owns(path):
            found.append((int(match.group(1)), int(match.group(2) or 0), path))
    return sorted(found)


def _write_text_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def save_train_state(directory: str | os.PathLike, step: int, payload: dict, keep: int, owner: Owner) -> Path:
    """Write ``payload`` as the checkpoint of `step`; returns its path. Keeps the newest `keep` of `owner`'s."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"step_{step:08d}.pt"
    revision = 0
    while target.exists():  # resumed from an older checkpoint: never replace the later one
        revision += 1
        target = directory / f"step_{step:08d}.r{revision}.pt"
    owner.claim(target, directory / LATEST)
    partial = directory / f".{target.name}.partial"
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, **payload}, partial)
    os.replace(partial, target)
    _write_text_atomically(directory / LATEST, target.name + "\n")
    for _, _, old in _checkpoints(directory, owner)[:-keep]:
        if old != target:
            old.unlink(missing_ok=True)
            owner.release(old)
    return target


def latest_checkpoint(directory: str | os.PathLike, owner: Owner) -> Path | None:
    """`owner`'s checkpoint named by ``latest.txt``, else its highest step present, else None."""
    directory = Path(directory)
    pointer = directory / LATEST
    if pointer.is_file() and owner.owns(pointer):
        named = directory / pointer.read_text().strip()
        if _NAME.match(named.name) and named.is_file() and owner.owns(named):
            return named
    found = _checkpoints(directory, owner)
    return found[-1][2] if found else None


def load_train_state(path: str | os.PathLike) -> dict:
    """Read a training checkpoint (weights_only) and check that it is one."""
    state = safe_torch_load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a vjepa_wm training checkpoint")
    check_format_version(state.get("format_version", 0), FORMAT_VERSION, path)
    return state
