"""Checkpoint import and export for encoders.

Formats read (the size is inferred from the weights):

* official V-JEPA 2 ``.pt`` files: a dict with ``encoder`` / ``target_encoder`` (/ ``predictor``)
  state dicts whose keys carry ``module.`` or ``module.backbone.`` prefixes;
* official V-JEPA 2.1 ``.pt`` files: ``target_encoder`` / ``ema_encoder`` with ``norms_block``,
  ``patch_embed_img`` and the modality embeddings;
* Hugging Face ``VJEPA2Model`` directories (``config.json`` + ``model.safetensors``);
* our own directories (``config.json`` with ``"format": "vjepa_wm"`` + ``model.safetensors``).

Every ``torch.load`` uses ``weights_only=True``: a pickle that would run code is refused, not run.
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

from world_model.vit import ENCODER_SIZES, EncoderConfig, VisionTransformer

OUR_FORMAT = "vjepa_wm"
FORMAT_VERSION = 1
# The official evaluations read `target_encoder`; distilled 2.1 files call theirs `ema_encoder`.
ENCODER_KEYS = ("target_encoder", "ema_encoder", "encoder")
# Preset widths -> heads (weights do not record the head count; ViT-g has 22 heads).
HEADS_BY_WIDTH = {dim: heads for dim, _, heads, _ in ENCODER_SIZES.values()}


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


# ----------------------------------------------------------------------------- encoder import


def infer_encoder_config(state: dict[str, torch.Tensor], num_heads: int | None = None, source: str = "") -> EncoderConfig:
    """Recover the architecture from official-layout encoder weights."""
    patch = state.get("patch_embed.proj.weight")
    if patch is None or patch.dim() != 5:
        raise CheckpointError(f"{source}: not V-JEPA encoder weights (no 5-D patch_embed.proj.weight)")
    dim, in_chans, tubelet, patch_size, _ = patch.shape
    block_ids = {int(k.split(".")[1]) for k in state if k.startswith("blocks.")}
    if not block_ids:
        raise CheckpointError(f"{source}: no transformer blocks in the encoder weights")
    depth = max(block_ids) + 1
    mlp_hidden = state["blocks.0.mlp.fc1.weight"].shape[0] if "blocks.0.mlp.fc1.weight" in state else 4 * dim
    heads = num_heads or HEADS_BY_WIDTH.get(dim)
    if heads is None:
        if dim % 64:
            raise CheckpointError(f"{source}: cannot infer the head count of width {dim}; pass num_heads")
        heads = dim // 64
    is_21 = "norms_block.0.weight" in state
    return EncoderConfig(
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        mlp_hidden=mlp_hidden,
        version="2.1" if is_21 else "2",
        patch_size=patch_size,
        tubelet_size=tubelet,
        in_chans=in_chans,
        rope_layout="interleaved" if is_21 else "tiled",
        interpolate_rope=is_21,
        image_tokenizer="patch_embed_img.proj.weight" in state,
        modality_embedding="img_mod_embed" in state,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
    )


def encoder_from_official_state(state: dict, num_heads: int | None = None, source: str = "") -> VisionTransformer:
    state = strip_prefixes(state)
    state = {k: v for k, v in state.items() if k != "pos_embed"}  # unused with RoPE
    model = VisionTransformer(infer_encoder_config(state, num_heads, source))
    load_strict(model, state, source)
    return model


HF_ENCODER_PREFIX = "encoder."


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


def hf_to_official_encoder(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename Hugging Face VJEPA2 encoder keys to the official layout (query/key/value -> qkv)."""
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("vjepa2.")
        if not key.startswith(HF_ENCODER_PREFIX):
            continue
        key = key[len(HF_ENCODER_PREFIX) :]
        key = key.replace("embeddings.patch_embeddings.", "patch_embed.")
        if key.startswith("layernorm."):
            key = "norm." + key[len("layernorm.") :]
        renamed[key.replace("layer.", "blocks.", 1).replace(".attention.", ".attn.")] = value
    return fuse_qkv(renamed)


def official_to_hf_encoder(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `hf_to_official_encoder` (qkv split into thirds)."""
    out = {}
    for key, value in state.items():
        if key.endswith(("attn.qkv.weight", "attn.qkv.bias")):
            stem, kind = key.rsplit(".attn.qkv.", 1)
            for part, chunk in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                out[f"{stem}.attn.{part}.{kind}"] = chunk.contiguous()
            continue
        out[key] = value
    renamed = {}
    for key, value in out.items():
        key = key.replace("patch_embed.", "embeddings.patch_embeddings.")
        if key.startswith("norm."):
            key = "layernorm." + key[len("norm.") :]
        key = key.replace("blocks.", "layer.", 1).replace(".attn.", ".attention.")
        renamed[HF_ENCODER_PREFIX + key] = value
    return renamed


def hf_config_to_encoder(hf: dict) -> EncoderConfig:
    try:
        dim = int(hf["hidden_size"])
        return EncoderConfig(
            embed_dim=dim,
            depth=int(hf["num_hidden_layers"]),
            num_heads=int(hf["num_attention_heads"]),
            mlp_hidden=int(dim * float(hf.get("mlp_ratio", 4.0))),
            patch_size=int(hf.get("patch_size", 16)),
            tubelet_size=int(hf.get("tubelet_size", 2)),
            in_chans=int(hf.get("in_chans", 3)),
            img_size=int(hf.get("crop_size", 256)),
            qkv_bias=bool(hf.get("qkv_bias", True)),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"Hugging Face config lacks a usable field ({err})") from None


def encoder_to_hf_config(config: EncoderConfig) -> dict:
    if config.version != "2":
        raise CheckpointError("the Hugging Face VJEPA2 format has no V-JEPA 2.1 encoder")
    return {
        "model_type": "vjepa2",
        "architectures": ["VJEPA2Model"],
        "hidden_size": config.embed_dim,
        "num_hidden_layers": config.depth,
        "num_attention_heads": config.num_heads,
        "mlp_ratio": config.mlp_hidden / config.embed_dim,
        "patch_size": config.patch_size,
        "tubelet_size": config.tubelet_size,
        "in_chans": config.in_chans,
        "crop_size": config.img_size,
        "qkv_bias": config.qkv_bias,
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu",
    }


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


def load_encoder(source: str | os.PathLike, key: str | None = None, num_heads: int | None = None) -> VisionTransformer:
    """Load an encoder from any supported format, inferring its size; returns it in eval mode."""
    path = Path(source)
    fmt = detect_format(path)
    if fmt == "ours":
        meta, state = read_our_checkpoint(path, "encoder")
        try:
            config = EncoderConfig.from_dict(meta["config"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: bad encoder config ({err})") from None
        model = VisionTransformer(config)
        load_strict(model, state, str(path))
    elif fmt == "hf":
        config = hf_config_to_encoder(read_json(path / "config.json"))
        model = VisionTransformer(config)
        load_strict(model, hf_to_official_encoder(read_hf_weights(path)), str(path))
    else:
        checkpoint = safe_torch_load(path)
        state = select_state(checkpoint, key, ENCODER_KEYS, path, "encoder")
        model = encoder_from_official_state(state, num_heads, str(path))
    return model.eval()


# ----------------------------------------------------------------------------- writing


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


def save_encoder(model: VisionTransformer, target: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save to our format: ``config.json`` + ``model.safetensors``."""
    return save_our_checkpoint(target, "encoder", model.config.to_dict(), model.state_dict(), overwrite)


def export_encoder(model: VisionTransformer, target: str | os.PathLike, fmt: str, overwrite: bool = False) -> Path:
    """Write an encoder as ``ours``, ``hf`` (a VJEPA2Model directory) or ``official`` (a .pt file)."""
    target = Path(target)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if fmt == "ours":
        return save_encoder(model, target, overwrite)
    if fmt == "hf":
        hf_config = encoder_to_hf_config(model.config)

        def write(folder: Path) -> None:
            (folder / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
            save_file({k: v.contiguous() for k, v in official_to_hf_encoder(state).items()}, str(folder / "model.safetensors"))

        return write_directory(target, write, overwrite)
    if fmt == "official":
        if target.exists() and not overwrite:
            raise CheckpointError(f"{target}: already exists; refusing to overwrite (pass --force)")
        wrapped = {f"module.backbone.{k}": v for k, v in state.items()}
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        torch.save({"encoder": wrapped, "target_encoder": wrapped}, partial)
        os.replace(partial, target)
        return target
    raise CheckpointError(f"unknown checkpoint format {fmt!r} (choose ours, hf or official)")
