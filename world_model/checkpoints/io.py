"""Reading and writing checkpoint files safely: the building blocks every format's converter uses.

* `safe_torch_load`: ``torch.load`` with ``weights_only=True`` and one-line errors, so a pickle that
  would run code is refused (naming the global it asks for), not run, and other bytes are "not a
  checkpoint";
* `read_safetensors`, `read_model_safetensors` (one ``model.safetensors`` or the shards its
  ``model.safetensors.index.json`` names), `read_json`, `read_hf_weights`, `detect_format` (ours,
  Hugging Face, official), `check_format_version`;
* `config_errors`: a config that cannot build its model is one error naming the file;
* `load_strict`: all weights or an error naming the missing, unexpected and mis-shaped keys, or the
  first tensor holding NaN / inf (`check_finite`);
* `write_directory` / `save_our_checkpoint`: our format (``config.json`` with ``"format": "vjepa_wm"``
  + ``model.safetensors``), written atomically and never over an existing directory unless asked.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
import shutil
import tempfile
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

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
        with warnings.catch_warnings():  # a foreign protocol is reported below, as one line
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        wanted = _named_global(str(err)) or _foreign_global(path)
        if wanted:
            raise CheckpointError(
                f"{path}: refused: its pickle asks for {wanted}, which would run code (weights_only=True loads only "
                f"plain weight files)"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (unreadable pickle: {_weights_unpickler_reason(err)})") from None
    except Exception as err:  # torch raises many types for damaged files (IndexError, RuntimeError, ...)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt: {reason})") from None


# A pickle is probed this far at most: globals come first in what they build, and the probe never
# needs the tensors' bytes.
PROBE_BYTES = 64 << 20


class _AsksForGlobal(Exception):
    pass


class _GlobalProbe(pickle.Unpickler):
    """Walks a pickle without importing or calling anything: torch's own tensor-rebuilding globals
    are inert stand-ins, any other global stops the walk with its name."""

    def find_class(self, module: str, name: str):
        if module == "torch" or module.startswith("torch.") or (module, name) == ("collections", "OrderedDict"):
            return _inert
        raise _AsksForGlobal(f"{module}.{name}")

    def persistent_load(self, pid):
        return None


def _inert(*args, **kwargs) -> None:
    return None


def _foreign_global(path: Path) -> str | None:
    """The first global outside torch that the file's pickle (or a zip checkpoint's ``data.pkl``)
    asks for, or None when it asks for none or is no pickle at all.

    torch's weights_only unpickler names a refused global only for the pickle protocols it reads
    (1-3); at 0, 4 and 5 it stops at an opcode it does not know, so this probe tells a pickle that
    would run code from bytes that are simply not a checkpoint.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                if not names:
                    return None
                with archive.open(names[0]) as handle:
                    data = handle.read(PROBE_BYTES)
        else:
            with open(path, "rb") as handle:
                data = handle.read(PROBE_BYTES)
        _GlobalProbe(io.BytesIO(data)).load()
    except _AsksForGlobal as asked:
        return str(asked)
    except Exception:  # not a pickle, truncated, or a shape the probe cannot walk: nothing asked for
        return None
    return None


def _named_global(message: str) -> str | None:
    """The global that torch's weights_only unpickler refused, from its message."""
    match = re.search(r"GLOBAL ([\w.]+)", message)
    return match.group(1) if match else None


def _weights_unpickler_reason(err: Exception) -> str:
    """The reason torch gives after its long weights_only preamble (e.g. 'Unsupported operand 149')."""
    text = str(err)
    tail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else text
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None


SAFETENSORS_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"


def read_model_safetensors(directory: Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint directory: ``model.safetensors``, or else the shards that
    ``model.safetensors.index.json`` names (transformers writes these past ``max_shard_size``,
    and the hub holds large models that way)."""
    single = directory / SAFETENSORS_FILE
    index = directory / SHARD_INDEX
    if single.exists() or not index.exists():
        return read_safetensors(single)
    return read_sharded_safetensors(index)


def read_sharded_safetensors(index_path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a sharded checkpoint, each read once: the index must name only shard files
    that exist beside it, and each shard must hold exactly the tensors the index places in it (a
    tensor found in two shards or in none would otherwise load silently, or not at all)."""
    weight_map = read_shard_index(index_path)
    placed: dict[str, set[str]] = {}
    for name, shard in weight_map.items():
        placed.setdefault(shard, set()).add(name)
    for shard in placed:
        if Path(shard).name != shard or shard in (".", ".."):
            raise CheckpointError(f"{index_path}: shard {shard!r} is not a file name beside the index")
    missing = sorted(s for s in placed if not (index_path.parent / s).is_file())
    if missing:
        more = f" ({len(missing)} shards missing)" if len(missing) > 1 else ""
        raise CheckpointError(f"{index_path}: names shard {missing[0]}, which does not exist{more}")
    state: dict[str, torch.Tensor] = {}
    for shard, names in sorted(placed.items()):
        path = index_path.parent / shard
        tensors = read_safetensors(path)
        absent = sorted(names - set(tensors))
        if absent:
            raise CheckpointError(f"{path}: lacks {absent[0]}, which {index_path.name} places in it")
        stray = sorted(set(tensors) - names)
        if stray:
            where = f"places in {weight_map[stray[0]]}" if stray[0] in weight_map else "does not list"
            raise CheckpointError(f"{path}: holds {stray[0]}, which {index_path.name} {where}")
        state.update(tensors)
    return state


def read_shard_index(path: Path) -> dict[str, str]:
    """The ``weight_map`` (tensor name -> shard file) of a shard index; a name listed twice is refused."""

    def unique(pairs):
        keys = [key for key, _ in pairs]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise CheckpointError(f"{path}: lists {repeated[0]} more than once")
        return dict(pairs)

    try:
        index = json.loads(path.read_text(), object_pairs_hook=unique)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a readable shard index ({err})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{path}: not a shard index (no \"weight_map\" of tensor names to shard files)")
    return weight_map


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
    check_finite(state, source)
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


@contextmanager
def config_errors(source, what: str) -> Iterator[None]:
    """Turn the errors of building a model from a recorded or inferred config (missing, mistyped or
    nonsense fields) into one `CheckpointError` naming the file."""
    try:
        yield
    except CheckpointError:
        raise
    except (LookupError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: bad {what} config ({str(err).strip() or type(err).__name__})") from None


def check_finite(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or inf: a model built from them gives NaN features and plans
    without any error. Names the first bad tensor, in the file's order."""
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(f"{source}: weights are not finite: {key} holds {bad} NaN/inf of {value.numel()} values")


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
    if (directory / SAFETENSORS_FILE).exists() or (directory / SHARD_INDEX).exists():
        return read_model_safetensors(directory)
    bin_path = directory / "pytorch_model.bin"
    if bin_path.exists():
        state = safe_torch_load(bin_path)
        if not is_state_dict(state):
            raise CheckpointError(f"{bin_path}: not a state dict")
        return state
    raise CheckpointError(f"{directory}: Hugging Face directory without model.safetensors (or its shard index) or pytorch_model.bin")



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
    check_format_version(meta.get("format_version", 0), FORMAT_VERSION, directory / "config.json")
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{directory / 'config.json'}: its \"config\" is not a JSON object")
    return meta, read_model_safetensors(directory)


def check_format_version(version: object, newest: int, source) -> None:
    """A format version this reader knows: an integer from 0 (unrecorded) up to `newest`."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise CheckpointError(f"{source}: format_version {version!r} is not a non-negative integer")
    if version > newest:
        raise CheckpointError(f"{source}: written by a newer vjepa_wm (format {version}; this one reads up to {newest})")


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
