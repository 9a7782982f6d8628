"""What an evaluation scored, with which code and how it was asked for: the ``provenance``
record every eval JSON carries.

Why: two eval JSONs can only be compared (or a number in a model card trusted) when each says
which weights it scored and which code scored them. The record holds

* ``model``: the source as given, the local path that was read, the hub id and the commit of the
  cached snapshot for a hub id, and the sha256 of every file that defines the model (its
  ``config.json`` and weight files; a hub id or an edited weight changes it, a model card beside
  it does not), with one ``sha256`` over them all;
* ``vjepa_wm_version`` and ``git_commit``: the commit of the source tree when the package runs
  from a git checkout, read from ``.git`` itself (no git program needed; None otherwise);
* ``command``: an equivalent ``vjepa-wm`` command line, rebuilt from the settings that differ
  from the defaults (so a YAML file or a Python caller does not hide them), and ``argv``, the
  process's own command line.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shlex
import sys
from pathlib import Path

import yaml

from vjepa_wm import __version__
from vjepa_wm.world_model.checkpoints.hub import resolve_checkpoint
from vjepa_wm.world_model.checkpoints.io import SAFETENSORS_FILE, SHARD_INDEX, read_shard_index
from vjepa_wm.world_model.configuration import default_tree, flatten, to_dict

# The files of a checkpoint directory that define its model (shards come from the index).
MODEL_FILES = ("config.json", SAFETENSORS_FILE, SHARD_INDEX, "pytorch_model.bin")


def provenance(command: str, config, model: str | os.PathLike) -> dict:
    """The record for an eval JSON: `command` is the subcommand (``eval-sim``), `config` its
    dataclass config and `model` the checkpoint source it scored."""
    return {
        "model": model_record(model),
        "vjepa_wm_version": __version__,
        "git_commit": git_commit(),
        "command": command_line(command, config),
        "argv": list(sys.argv),
    }


def model_record(source: str | os.PathLike) -> dict:
    found = resolve_checkpoint(source)
    files = {name: sha256_file(path) for name, path in model_files(found.path)}
    return {
        "source": str(source),
        "path": str(found.path.absolute()),
        "hub_id": found.hub_id,
        "revision": found.revision,
        "sha256": combined_sha256(files),
        "files": files,
    }


def model_files(path: Path) -> list[tuple[str, Path]]:
    """(name, path) of the files that define the model at `path`: the file itself, or the
    directory's config, weights and the shards its index names."""
    if not path.is_dir():
        return [(path.name, path)]
    names = [name for name in MODEL_FILES if (path / name).is_file()]
    if SHARD_INDEX in names and SAFETENSORS_FILE not in names:
        names += sorted(set(read_shard_index(path / SHARD_INDEX).values()))
    return [(name, path / name) for name in names]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def combined_sha256(files: dict[str, str]) -> str:
    """One digest of a model's files: sha256 over ``name\\0sha256\\n`` lines in name order."""
    return hashlib.sha256("".join(f"{name}\0{files[name]}\n" for name in sorted(files)).encode()).hexdigest()


# ----------------------------------------------------------------------------- code version


def git_commit(start: Path | None = None) -> str | None:
    """The commit checked out in the git work tree holding `start` (default: this package), or
    None when there is none or it cannot be read: a worktree's ``.git`` file, loose and packed
    refs and a detached HEAD are followed; nothing here can fail an eval."""
    start = (start or Path(__file__)).resolve()
    root = next((folder for folder in (start, *start.parents) if (folder / ".git").exists()), None)
    if root is None:
        return None
    try:
        gitdir = root / ".git"
        if gitdir.is_file():  # a worktree or submodule: "gitdir: <path>"
            gitdir = (root / gitdir.read_text().split("gitdir:", 1)[1].strip()).resolve()
        head = (gitdir / "HEAD").read_text().strip()
        common = gitdir / (gitdir / "commondir").read_text().strip() if (gitdir / "commondir").is_file() else gitdir
        if not head.startswith("ref:"):
            return head if _is_sha(head) else None
        ref = head[len("ref:"):].strip()
        for base in (gitdir, common):
            if (base / ref).is_file():
                sha = (base / ref).read_text().strip()
                return sha if _is_sha(sha) else None
        if (common / "packed-refs").is_file():
            for line in (common / "packed-refs").read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name.strip() == ref and _is_sha(sha):
                    return sha
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    return None


def _is_sha(text: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", text) is not None


# ----------------------------------------------------------------------------- the command


def command_line(command: str, config) -> str:
    """``vjepa-wm <command> --key=value ...`` for every setting of the dataclass `config` that
    differs from its class's defaults: the same run, asked for on the command line."""
    return changed_command(command, dict(_leaves(config)), dict(_default_leaves(type(config))))


def changed_command(command: str, settings: dict, defaults: dict) -> str:
    """The command line of flat dotted `settings`, naming those that differ from `defaults`."""
    words = ["vjepa-wm", command]
    words += [f"--{key}={option_text(value)}" for key, value in settings.items() if key not in defaults or defaults[key] != value]
    return shlex.join(words)


def record_defaults(cls: type) -> dict:
    """The defaults of a config class flattened as a run record (`training.run_folder`) flattens
    its settings: every mapping, nested configs and dict fields alike, down to its leaves."""
    return flatten(default_tree(cls))


def _leaves(config, prefix: str = ""):
    """(dotted name, plain value) of every leaf field, descending into nested configs only."""
    for f in dataclasses.fields(config):
        if f.init:
            yield from _leaf(f.name, getattr(config, f.name), prefix)


def _default_leaves(cls: type, prefix: str = ""):
    """`_leaves` of the class defaults, without running the class's own ``__post_init__`` (as the
    command line's defaults, `configuration.default_tree`)."""
    for f in dataclasses.fields(cls):
        if f.init and f.default is not dataclasses.MISSING:
            yield from _leaf(f.name, f.default, prefix)
        elif f.init and f.default_factory is not dataclasses.MISSING:
            yield from _leaf(f.name, f.default_factory(), prefix)


def _leaf(name: str, value, prefix: str):
    if dataclasses.is_dataclass(value):
        yield from _leaves(value, f"{prefix}{name}.")
    else:
        yield f"{prefix}{name}", to_dict(value)


def option_text(value) -> str:
    """A value as the command line reads it: text as typed, anything else as flow YAML."""
    if isinstance(value, str):
        return value
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    return text[: -len("...")].strip() if text.endswith("\n...") else text
