"""Checkpoint sources that name a Hugging Face hub repository instead of a local path.

Why: most people get V-JEPA 2 weights from the hub (``facebook/vjepa2-vitl-fpc64-256``) and
``transformers`` takes those ids, so every loader takes them too. A source is read as follows:

* a path that exists on disk is that path, always (a local folder named like an id wins);
* ``hf://owner/name[@revision][/path/in/repo]`` is always a hub id (``hf://models/...`` too);
* a bare ``owner/name[@revision]`` that is not on disk (and does not end like a weight file,
  ``.pt``, ``.safetensors``, ...) is tried as a hub id, and a miss names both what was tried
  locally and in the hub cache;
* anything else is a local path, and the loaders say it does not exist.

A hub id is looked up in the local hub cache first (``local_files_only``), so a cached model
loads with no network; only on a miss is the hub asked, and never when ``HF_HUB_OFFLINE`` is
set: then the miss is one line naming the id and the command that fetches it. Only the files
the loaders read are asked for (``config.json``, safetensors and their index,
``pytorch_model.bin``; a path in the repo ending in ``.pt``/``.pth`` is that one official file).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .io import CheckpointError

HF_PREFIX = "hf://"
# owner/name with an optional @revision (a branch, tag or commit; no "/"): the bare form of an id.
BARE_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(?:@[\w.-]+)?")
# What the loaders read from a repository folder: a partial cache holding these is complete for us.
WEIGHT_PATTERNS = ("config.json", "*.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
SINGLE_FILE_SUFFIXES = (".pt", ".pth")
# A bare "folder/name.pt" that is missing is a mistyped local file, never asked of the hub.
FILE_SUFFIXES = (*SINGLE_FILE_SUFFIXES, ".safetensors", ".bin", ".json")


@dataclass(frozen=True)
class CheckpointSource:
    """Where a checkpoint was found: the local `path` the loaders read and, for a hub id, the
    repository, the commit the cache holds it at, and the path inside the repository."""

    path: Path
    hub_id: str | None = None
    revision: str | None = None
    path_in_repo: str = ""


@dataclass(frozen=True)
class HubId:
    repo_id: str
    revision: str | None
    path_in_repo: str

    def __str__(self) -> str:
        at = f"@{self.revision}" if self.revision else ""
        return f"{HF_PREFIX}{self.repo_id}{at}" + (f"/{self.path_in_repo}" if self.path_in_repo else "")


def parse_hub_id(text: str) -> HubId:
    """``owner/name[@rev]`` or ``hf://[models/]owner/name[@rev][/path]`` as its parts."""
    body = text[len(HF_PREFIX):] if text.startswith(HF_PREFIX) else text
    parts = [p for p in body.split("/") if p]
    if parts and parts[0] in ("datasets", "spaces", "buckets"):
        raise CheckpointError(f"{text}: names a Hugging Face {parts[0][:-1]}, not a model repository")
    if parts and parts[0] == "models":
        parts = parts[1:]
    if len(parts) < 2:
        raise CheckpointError(f"{text}: not a Hugging Face model id (expected owner/name or hf://owner/name[@revision][/subfolder])")
    name, _, revision = parts[1].partition("@")
    repo_id = f"{parts[0]}/{name}"
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise CheckpointError(f"{text}: not a valid Hugging Face model id ({str(err).splitlines()[0]})") from None
    if "@" in parts[1] and not revision:
        raise CheckpointError(f"{text}: empty revision after '@'")
    return HubId(repo_id, revision or None, "/".join(parts[2:]))


def resolve_checkpoint(source: str | os.PathLike) -> CheckpointSource:
    """The local path of `source` (module docstring: local paths win, then hub ids, cache first)."""
    if not isinstance(source, str):
        return CheckpointSource(Path(source))
    if source.startswith(HF_PREFIX):
        return from_hub(parse_hub_id(source), source, tried_locally=False)
    path = Path(source)
    if path.exists() or not BARE_ID.fullmatch(source) or source.endswith(FILE_SUFFIXES):
        return CheckpointSource(path)
    return from_hub(parse_hub_id(source), source, tried_locally=True)


def from_hub(hub: HubId, text: str, tried_locally: bool) -> CheckpointSource:
    """The cached snapshot (or file) of `hub`, fetched first if the cache misses and the hub may be asked."""
    from huggingface_hub import constants
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    local = f"no such local file or directory, and {hub}" if tried_locally else str(hub)
    try:
        path = _fetch(hub, local_files_only=True)
    except (LocalEntryNotFoundError, EntryNotFoundError):  # not cached, or cached in part
        path = None
    if path is None or not path.exists():
        if constants.HF_HUB_OFFLINE:
            raise CheckpointError(f"{text}: {local} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
                                  f"HF_HUB_OFFLINE is set; fetch it with `{fetch_command(hub)}`")
        path = _fetch_online(hub, text, local)
        if not path.exists():
            raise CheckpointError(f"{text}: {hub.repo_id} has no folder {hub.path_in_repo!r} holding weights")
    return CheckpointSource(path, hub.repo_id, _commit_of(path), hub.path_in_repo)


def fetch_command(hub: HubId) -> str:
    """The shell command that puts `hub` into the cache (``hf``, huggingface_hub's own CLI, which
    older releases call ``huggingface-cli``)."""
    words = ["hf", "download", hub.repo_id]
    if hub.path_in_repo.endswith(SINGLE_FILE_SUFFIXES):
        words.append(hub.path_in_repo)
    if hub.revision:
        words += ["--revision", hub.revision]
    return " ".join(words)


def _fetch(hub: HubId, local_files_only: bool) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download

    if hub.path_in_repo.endswith(SINGLE_FILE_SUFFIXES):
        return Path(hf_hub_download(hub.repo_id, hub.path_in_repo, revision=hub.revision, local_files_only=local_files_only))
    prefix = f"{hub.path_in_repo}/" if hub.path_in_repo else ""
    folder = snapshot_download(hub.repo_id, revision=hub.revision, local_files_only=local_files_only,
                               allow_patterns=[prefix + p for p in WEIGHT_PATTERNS])
    return Path(folder) / hub.path_in_repo


def _fetch_online(hub: HubId, text: str, local: str) -> Path:
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return _fetch(hub, local_files_only=False)
    except GatedRepoError:
        raise CheckpointError(f"{text}: {hub} is gated: accept its terms on huggingface.co and log in (`hf auth login`)") from None
    except RepositoryNotFoundError:
        raise CheckpointError(f"{text}: {local} is not a model on the Hugging Face hub (or it is private: log in with "
                              f"`hf auth login`)") from None
    except RevisionNotFoundError:
        raise CheckpointError(f"{text}: {hub.repo_id} has no revision {hub.revision!r}") from None
    except LocalEntryNotFoundError:  # the hub cannot be reached and nothing is cached
        raise CheckpointError(f"{text}: {local} is not in the Hugging Face cache and the hub cannot be reached; fetch it "
                              f"where there is a network with `{fetch_command(hub)}`") from None
    except EntryNotFoundError:
        raise CheckpointError(f"{text}: {hub.repo_id} has no file {hub.path_in_repo!r}") from None
    except HfHubHTTPError as err:
        raise CheckpointError(f"{text}: the Hugging Face hub refused {hub} ({str(err).strip().splitlines()[0]})") from None


def _commit_of(path: Path) -> str | None:
    """The commit of a path inside the hub cache (``models--owner--name/snapshots/<commit>/...``)."""
    parts = path.parts
    for index in range(len(parts) - 2, 0, -1):
        if parts[index] == "snapshots" and parts[index - 1].startswith("models--"):
            return parts[index + 1]
    return None
