"""`vjepa-wm export-hub --model M --out DIR [--eval-json F] [--push OWNER/NAME]`: a world model as a
Hugging Face hub model repository.

DIR gets the model in our format (config.json + model.safetensors, which every `--model` reads,
from the folder or from its hub id) and a model card, README.md: YAML front matter (library_name,
tags, license, datasets) and what the model is, what it was trained on and with which command
(from the training run's run.json beside the model's folder, when there is one), and the table
of an eval's --json when --eval-json gives one. --push uploads those three files to the hub
repository (created if missing; needs `hf auth login`). Files in DIR that an export did not write
are never replaced: DIR/.vjepa_wm-export.json records what it wrote.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from vjepa_wm.config_cli import ConfigCommand, add_config_command


@dataclass
class ExportHubConfig:
    model: str = ""  # world model: our directory, its hub id, or the official V-JEPA 2-AC .pt
    out: str = ""  # the folder to write (it may hold other files, e.g. a clone of the hub repository)
    img_size: int = 256  # frame size of an official .pt (ours record it)
    eval_json: str | None = None  # an eval's --json output (eval-sim, nav-replay, a benchmark) for the card's table
    license: str = "other"  # the weights' licence, as a hub licence id (mit, apache-2.0, cc-by-nc-4.0, ...)
    datasets: list[str] = field(default_factory=list)  # hub ids of the training data (default: the run's data.path if it is one)
    push: str | None = None  # also upload to this hub model repository (owner/name)
    private: bool = False  # with push: create the repository private


def run(config: ExportHubConfig) -> int:
    import json
    from pathlib import Path

    from vjepa_wm.hub_export import export_folder, model_card, training_record
    from vjepa_wm.provenance import model_record
    from vjepa_wm.world_model.checkpoints import load_world_model, resolve_checkpoint, save_world_model

    if not config.model or not config.out:
        raise ValueError("give --model (the world model to export) and --out (the folder to write)")
    evaluation = None
    if config.eval_json:
        try:
            evaluation = json.loads(Path(config.eval_json).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"--eval-json {config.eval_json}: not a readable JSON file ({err})") from None
    source = resolve_checkpoint(config.model).path
    model = load_world_model(source, img_size=config.img_size)
    training, origin = training_record(source), model_record(config.model)

    def write(folder: Path) -> None:
        save_world_model(model, folder)  # the empty staging folder
        card = model_card(model, name=Path(config.out).resolve().name, weights=model_record(folder), source=origin,
                          training=training, evaluation=evaluation, license=config.license, datasets=config.datasets,
                          repo_id=config.push)
        (folder / "README.md").write_text(card)

    written = export_folder(Path(config.out), write)
    print(f"{model.embodiment.name} world model ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params) -> "
          f"{config.out}: {', '.join(written)}")
    if config.push:
        from huggingface_hub import create_repo, upload_folder

        url = create_repo(config.push, private=config.private, exist_ok=True)
        upload_folder(repo_id=config.push, folder_path=config.out, allow_patterns=written,
                      commit_message=f"vjepa-wm export-hub of {config.model}")
        print(f"pushed to {url}")
    return 0


def register(subparsers) -> None:
    add_config_command(subparsers, "export-hub", ConfigCommand(ExportHubConfig, run),
                       help="write a world model as a Hugging Face hub repository (with a model card)", description=__doc__)
