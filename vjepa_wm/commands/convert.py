"""`vjepa-wm convert SOURCE TARGET`: move encoder weights between checkpoint formats.

SOURCE may be an official V-JEPA 2 / 2.1 .pt, a Hugging Face VJEPA2Model directory or one of our
directories; TARGET is written as --to ours (default), hf or official. An existing TARGET is never
replaced without --force.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vjepa_wm.config_cli import ConfigCommand, add_config_command, positional


@dataclass
class ConvertConfig:
    source: str = positional("")  # the checkpoint to read (a path or a hub id)
    target: str = positional("")  # where to write it
    to: Literal["ours", "hf", "official"] = "ours"  # output format
    key: str | None = None  # state-dict key inside an official .pt (null: target_encoder)
    num_heads: int | None = None  # head count, for widths that are not published sizes
    force: bool = False  # replace an existing target


def run(config: ConvertConfig) -> int:
    from vjepa_wm.world_model.checkpoints import export_encoder, load_encoder

    if not config.source or not config.target:
        raise ValueError("give SOURCE and TARGET (vjepa-wm convert SOURCE TARGET --to ours|hf|official)")
    model = load_encoder(config.source, key=config.key, num_heads=config.num_heads)
    c = model.config
    path = export_encoder(model, config.target, config.to, overwrite=config.force)
    params = sum(p.numel() for p in model.parameters())
    print(f"V-JEPA {c.version} encoder {c.embed_dim}/{c.depth}/{c.num_heads} heads ({params / 1e6:.1f}M params) -> {path} [{config.to}]")
    return 0


def register(subparsers) -> None:
    add_config_command(subparsers, "convert", ConfigCommand(ConvertConfig, run),
                       help="convert encoder checkpoints between formats", description=__doc__)
