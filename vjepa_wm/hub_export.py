"""A world model as a Hugging Face hub repository folder: what `vjepa-wm export-hub` writes.

* `export_folder`: the folder may already hold files of others (a clone of the hub repository, a
  hand-written licence), so an export replaces only files an earlier export wrote and nobody has
  changed since (``.vjepa_wm-export.json`` records each one's sha256); any other file with a name
  it writes is refused by name before anything is written, and every file is replaced atomically;
* `training_record`: the training run's ``run.json`` beside the model's folder (as `train-ac`
  leaves it: ``<run.out_dir>/world_model`` + ``<run.out_dir>/run.json``), if that run wrote it;
* `model_card`: README.md with the hub's YAML front matter and a body saying what the model is,
  what it was trained on and how, and the table of an eval's JSON (checking that the eval scored
  these weights, by the sha256 its provenance records).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import yaml

from vjepa_wm import __version__
from vjepa_wm.benchmarks.common import format_value
from vjepa_wm.provenance import changed_command, git_commit, record_defaults, sha256_file
from vjepa_wm.world_model.checkpoints.hub import BARE_ID
from vjepa_wm.world_model.training.run_folder import FORMAT as RUN_FORMAT
from vjepa_wm.world_model.training.run_folder import MANIFEST as RUN_MANIFEST

RECORD = ".vjepa_wm-export.json"
RECORD_FORMAT = "vjepa_wm-hub-export"


# ----------------------------------------------------------------------------- the folder


def export_folder(out: Path, write: Callable[[Path], None]) -> list[str]:
    """`write(folder)` fills an empty staging folder; its files then replace their namesakes in
    `out` (see the module docstring for which may be replaced). Returns the names written."""
    out.mkdir(parents=True, exist_ok=True)
    written = _read_record(out)
    staging = Path(tempfile.mkdtemp(prefix=".export-hub.", dir=out))
    try:
        write(staging)
        names = sorted(p.name for p in staging.iterdir() if p.is_file())
        for name in names:
            target = out / name
            if target.exists() and (name not in written or sha256_file(target) not in written[name]):
                raise ValueError(f"{target}: not written by an earlier export-hub (or changed since); refusing to replace it: "
                                 f"move it away or export to another --out")
        new = {name: sha256_file(staging / name) for name in names}
        # Claimed before replacing: an export cut short leaves files the next one may replace.
        _write_record(out, {**written, **{name: sorted({*written.get(name, []), new[name]}) for name in names}})
        for name in names:
            os.replace(staging / name, out / name)
        _write_record(out, {**written, **{name: [new[name]] for name in names}})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return names


def _read_record(out: Path) -> dict[str, list[str]]:
    path = out / RECORD
    if not path.exists():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable export record ({err}); export to another --out") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or not isinstance(record.get("written"), dict):
        raise ValueError(f"{path}: not a vjepa_wm export record; export to another --out")
    return record["written"]


def _write_record(out: Path, written: dict[str, list[str]]) -> None:
    partial = out / f".{RECORD}.partial"
    partial.write_text(json.dumps({"format": RECORD_FORMAT, "written": written}, indent=1, sort_keys=True) + "\n")
    os.replace(partial, out / RECORD)


# ----------------------------------------------------------------------------- what the card says


def training_record(model_path: Path) -> dict | None:
    """The run record of the run that wrote the model directory `model_path`, else None."""
    path = model_path.parent / RUN_MANIFEST
    if not model_path.is_dir() or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("format") != RUN_FORMAT:
        return None
    if f"{model_path.name}/model.safetensors" not in record.get("written", []):
        return None  # a run record, but of a run that did not write this model
    return record


def training_command(record: dict) -> str | None:
    """The `train-ac` command line of a run record (its settings that differ from the defaults)."""
    if record.get("command") != "train-ac":
        return None
    from vjepa_wm.world_model.ac_training.config import ACTrainConfig

    return changed_command("train-ac", record.get("settings", {}), record_defaults(ACTrainConfig))


def eval_rows(evaluation) -> list[dict]:
    """The rows of an eval's JSON: a nav-replay ``table``, a list of benchmark records, or the
    summary of one eval (eval-sim); only their scalar fields."""
    if isinstance(evaluation, dict) and isinstance(evaluation.get("table"), list):
        rows = evaluation["table"]
    elif isinstance(evaluation, list):
        rows = evaluation
    else:
        rows = [evaluation]
    scalar = (str, int, float, bool, type(None))
    return [{k: v for k, v in row.items() if isinstance(v, scalar)} for row in rows if isinstance(row, dict)]


def markdown_table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value) -> str:
        return format_value(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def model_card(model, name: str, weights: dict, source: dict, training: dict | None, evaluation, license: str,
               datasets: list[str], repo_id: str | None = None) -> str:
    """README.md of the exported folder. `weights` and `source` are the `provenance.model_record`
    of the exported files and of what they were exported from."""
    settings = (training or {}).get("settings", {})
    data_path = settings.get("data.path")
    if not datasets and isinstance(data_path, str) and BARE_ID.fullmatch(data_path) and not Path(data_path).exists():
        datasets = [data_path]
    embodiment = model.embodiment
    meta = {
        "library_name": "vjepa_wm",
        "license": license,
        "tags": ["vjepa_wm", "v-jepa", "world-model", "robotics", "model-predictive-control", embodiment.name],
        "datasets": list(datasets),
    }
    sections = [f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n", f"# {name}\n", _what_it_is(model, repo_id),
                _files(weights, source), _training(training), _evaluation(evaluation, weights)]
    return "\n".join(s for s in sections if s)


def _what_it_is(model, repo_id: str | None) -> str:
    encoder, predictor, embodiment = model.encoder.config, model.predictor.config, model.embodiment
    millions = [sum(p.numel() for p in part.parameters()) / 1e6 for part in (model.encoder, model.predictor)]
    grid = model.img_size // encoder.patch_size
    source = repo_id or "OWNER/NAME"
    code = git_commit()
    return (
        f"A {embodiment.name} world model for goal-image planning, exported by vjepa_wm {__version__}"
        f"{f' (commit {code[:12]})' if code else ''}.\n\n"
        f"A frozen V-JEPA {encoder.version} encoder ({encoder.embed_dim} wide, {encoder.depth} blocks, {encoder.num_heads} "
        f"heads; {millions[0]:.1f}M parameters) turns each {model.img_size}x{model.img_size} camera frame into {grid * grid} "
        f"patch latents; an action-conditioned predictor ({predictor.predictor_dim} wide, {predictor.depth} blocks; "
        f"{millions[1]:.1f}M parameters) predicts the next frame's latents from the frames so far, the states and the "
        f"actions ({', '.join(embodiment.action_names)}). A CEM planner then searches the actions whose predicted future "
        f"lies closest (L1) to the latents of a goal image.\n\n"
        f"Use it with `--model {source}` wherever a vjepa-wm command takes a world model (`plan`, `eval-sim`, "
        f"`nav-replay`), or `vjepa_wm.world_model.checkpoints.load_world_model(\"{source}\")` in Python.\n"
    )


def _files(weights: dict, source: dict) -> str:
    rows = "\n".join(f"| {name} | `{digest}` |" for name, digest in sorted(weights["files"].items()))
    origin = f"`{source['source']}`"
    if source.get("hub_id"):
        origin += f" (hub repository {source['hub_id']} at commit {source['revision']})"
    return (f"## Files\n\nIn vjepa_wm's own format (`config.json` + `model.safetensors`); sha256 of the model: "
            f"`{weights['sha256']}` (what eval JSONs record as `provenance.model.sha256`). Exported from {origin}, "
            f"sha256 `{source['sha256']}`.\n\n| file | sha256 |\n|---|---|\n{rows}\n")


def _training(record: dict | None) -> str:
    if record is None:
        return ("## Training\n\nNot recorded: the folder the model was exported from had no training run record "
                "(`run.json` of the run that wrote it) beside it.\n")
    settings, inputs = record.get("settings", {}), record.get("inputs", {})
    data = inputs.get("data", {})
    lines = [f"- command: `vjepa-wm {record.get('command')}`" + (f", {settings['run.steps']} steps" if "run.steps" in settings else "")]
    if "data.path" in settings:
        size = f" ({data['files']} files, {data['bytes'] / 1e9:.2f} GB)" if {"files", "bytes"} <= set(data) else ""
        lines.append(f"- data: `{settings['data.path']}` ({settings.get('data.format', '?')} format){size}")
    if settings.get("model.encoder"):
        lines.append(f"- frozen encoder: `{settings['model.encoder']}`")
    command = training_command(record)
    body = "\n".join(lines)
    if command:
        body += ("\n\nThe same training, as one command (the settings that differ from the defaults; those that do not "
                 f"change what is computed, such as the device, are not recorded):\n\n```\n{command}\n```")
    return f"## Training\n\n{body}\n"


def _evaluation(evaluation, weights: dict) -> str:
    if evaluation is None:
        return ""
    rows = eval_rows(evaluation)
    if not rows or not rows[0]:
        raise ValueError("--eval-json: no table in it (expected an eval's or a benchmark's --json output)")
    origin = evaluation.get("provenance") if isinstance(evaluation, dict) else None
    if not isinstance(origin, dict):
        note = "The eval JSON records no provenance, so it may not have scored these weights."
    else:
        scored = (origin.get("model") or {}).get("sha256")
        same = "these weights" if scored == weights["sha256"] else f"**other weights** (sha256 `{scored}`)"
        commit = f" (commit {origin['git_commit'][:12]})" if origin.get("git_commit") else ""
        note = f"Scored {same} with vjepa_wm {origin.get('vjepa_wm_version')}{commit}:\n\n```\n{origin.get('command')}\n```"
    return f"## Evaluation\n\n{note}\n\n{markdown_table(rows)}\n"
