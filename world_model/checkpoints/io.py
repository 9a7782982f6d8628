"""Reading and writing checkpoint files safely: the building blocks every format's converter uses.

* `safe_torch_load`: ``torch.load`` with ``weights_only=True`` and one-line errors, so a pickle that
  would run code is refused, not run;
* `read_safetensors`, `read_json`, `read_hf_weights`, `detect_format` (ours, Hugging Face, official);
* `load_strict`: all weights or an error naming the missing, unexpected and mis-shaped keys;
* `write_directory` / `save_our_checkpoint`: our format (``config.json`` with ``"format": "vjepa_wm"``
  + ``model.safetensors``), written atomically and never over an existing directory unless asked.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

OUR_FORMAT = "vjepa_wm"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message names the problem."""


# ----------------------------------------------------------------------------- low-level reading


def safe_torch_load(path: str | os.PathLike) -> object:
    """`torch.load` with ``weights_only=True`` and one-line errors for bad files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory without a config.json (not a checkpoint directory)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err) or "Unsupported global" in str(err) or "GLOBAL" in str(err):
            raise CheckpointError(
                f"{path}: refused: the file's pickle asks to run code or build objects other than tensors "
                f"(weights_only=True); only plain weight files are loaded"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first})") from None
    except Exception as err:  # torch raises many types for damaged files (IndexError, RuntimeError, ...)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt: {reason})") from None


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a readable JSON config ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def strip_prefixes(state: dict[str, torch.Tensor], prefixes=("module.", "backbone.")) -> dict[str, torch.Tensor]:
    """Remove DDP / wrapper prefixes (``module.``, ``backbone.``) from every key."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in prefixes:
                if key.startswith(prefix):
                    key = key[len(prefix) :]
                    changed = True
        out[key] = value
    return out


def is_state_dict(obj: object) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def select_state(checkpoint: object, key: str | None, defaults: tuple[str, ...], path: Path, what: str) -> dict:
    """Pick the state dict stored under `key` (or the first present default key)."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict of state dicts, found {type(checkpoint).__name__}")
    if key is not None:
        if key not in checkpoint:
            raise CheckpointError(f"{path}: no {key!r} in checkpoint (keys: {', '.join(map(str, checkpoint))})")
        state = checkpoint[key]
    else:
        present = [k for k in defaults if k in checkpoint]
        if present:
            state = checkpoint[present[0]]
        elif is_state_dict(checkpoint):
            state = checkpoint
        else:
            raise CheckpointError(
                f"{path}: no {what} weights found (looked for {', '.join(defaults)}; "
                f"keys: {', '.join(map(str, checkpoint))})"
            )
    if not is_state_dict(state):
        raise CheckpointError(f"{path}: the {what} entry is not a state dict of tensors")
    return state


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load all weights or fail naming the missing, unexpected and mis-shaped keys."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or misshaped:
        parts = []
        for label, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if names:
                shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
                parts.append(f"{label}: {shown}")
        raise CheckpointError(f"{source}: weights do not fit the model; " + "; ".join(parts))
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def fuse_qkv(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Concatenate Hugging Face's separate ``.attn.{query,key,value}.*`` rows into official ``.attn.qkv.*``."""
    out: dict[str, torch.Tensor] = {}
    split: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        for part in ("query", "key", "value"):
            marker = f".attn.{part}."
            if marker in key:
                stem, kind = key.split(marker)
                split.setdefault(f"{stem}.attn.qkv.{kind}", {})[part] = value
                break
        else:
            out[key] = value
    for key, parts in split.items():
        if set(parts) != {"query", "key", "value"}:
            raise CheckpointError(f"incomplete query/key/value weights for {key}")
        out[key] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
    return out


def hf_section(state: dict[str, torch.Tensor], prefix: str):
    """(key without `prefix`, value) for the keys of one part (``encoder.`` / ``predictor.``) of a
    Hugging Face VJEPA2 state dict (whose keys may also carry the model's ``vjepa2.`` prefix)."""
    for key, value in state.items():
        key = key.removeprefix("vjepa2.")
        if key.startswith(prefix):
            yield key[len(prefix) :], value


def read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    safetensors_path = directory / "model.safetensors"
    if safetensors_path.exists():
        return read_safetensors(safetensors_path)
    bin_path = directory / "pytorch_model.bin"
    if bin_path.exists():
        state = safe_torch_load(bin_path)
        if not is_state_dict(state):
            raise CheckpointError(f"{bin_path}: not a state dict")
        return state
    raise CheckpointError(f"{directory}: Hugging Face directory without model.safetensors or pytorch_model.bin")



def detect_format(source: Path) -> str:
    """'ours', 'hf' or 'official' for an existing checkpoint path."""
    if source.is_dir():
        config_path = source / "config.json"
        if not config_path.exists():
            raise CheckpointError(f"{source}: directory has no config.json (not a checkpoint directory)")
        config = read_json(config_path)
        if config.get("format") == OUR_FORMAT:
            return "ours"
        if config.get("model_type") == "vjepa2":
            return "hf"
        raise CheckpointError(f"{config_path}: neither a vjepa_wm nor a Hugging Face VJEPA2 config")
    if not source.exists():
        raise CheckpointError(f"{source}: no such file or directory")
    return "official"


def read_our_checkpoint(directory: Path, kind: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config dict, weights) of one of our directories, checking that it holds a `kind`."""
    meta = read_json(directory / "config.json")
    if meta.get("format") != OUR_FORMAT:
        raise CheckpointError(f"{directory}: not a vjepa_wm checkpoint directory")
    if meta.get("kind") != kind:
        raise CheckpointError(f"{directory}: holds a {meta.get('kind')!r}, not a {kind!r}")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{directory}: written by a newer vjepa_wm (format {meta.get('format_version')})")
    return meta, read_safetensors(directory / "model.safetensors")


def write_directory(target: Path, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Write a checkpoint directory atomically: into a temporary sibling, then renamed.

    An existing non-empty target is never replaced unless `overwrite` is set, and even then the
    old directory is removed only after the new one is complete.
    """
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise CheckpointError(f"{target}: already exists; refusing to overwrite (pass overwrite=True / --force)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(staging)
        if target.exists():
            backup = target.with_name(f".{target.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            target.rename(backup)
            staging.rename(target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def save_our_checkpoint(target, kind: str, config: dict, state: dict[str, torch.Tensor], overwrite=False, extra=None) -> Path:
    meta = {"format": OUR_FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "config": config, **(extra or {})}

    def write(folder: Path) -> None:
        (folder / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(folder / "model.safetensors"))

    return write_directory(Path(target), write, overwrite)
