"""A run's output folder belongs to its run: ``run.json`` says which run it is and what it wrote.

Why: ``run.out_dir`` is a plain path, so a reused name or a typo can point a trainer at a folder
that holds another run or someone's own files. Without a record the trainer would "resume"
whatever checkpoint it found, prune checkpoints it never wrote and replace exports it did not make.
With ``run.json`` (written atomically):

* a folder whose record names the same run is resumed. The same run means the same command, the
  same *settings* (every config key, as a dotted name, except those each trainer lists as not
  changing what is computed: device, workers, logging, checkpoint frequency, ...) and the same
  *inputs* (fingerprints: ``encoder``, the frozen encoder's weights, config and frame size;
  ``data``, the files of the training data by path, size and modification time);
* a folder of another run is refused with one line naming what differs (``optim.lr 0.0004 ->
  0.001``, ``encoder``, ``data (4 -> 1 paths)``) and how to go on: start elsewhere with
  ``--run.out_dir``, or resume on purpose with ``--run.resume_changed='[optim.lr]'``, which must
  list exactly the keys that changed (it is ignored when nothing changed). An accepted change
  becomes the run's record, so the next resume compares with it;
* a folder without ``run.json`` takes a new run if no file there has a name the run writes;
* nothing the run did not write is deleted or overwritten: a foreign file with a name the run
  needs (``config.yaml``, ``checkpoints/latest.txt``, an export's files) is refused by name, and
  every other file, even inside the run's own subfolders (``world_model/NOTES.md``), stays.

The record lists every file the run wrote (claimed before it is written, released when the run
deletes it), so checkpoint pruning and resuming only ever consider the run's own checkpoints. It
is written with the run's first file (the trainers write their first with their first
checkpoint), so a run that fails before it has anything to resume leaves no claim behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from vjepa_wm.world_model.configuration import flatten, to_dict
from vjepa_wm.world_model.training.distributed import DistContext, gather_objects
from vjepa_wm.world_model.training.fingerprint import describe_changes

MANIFEST = "run.json"
FORMAT = "vjepa_wm-run"
FORMAT_VERSION = 1


class RunFolderError(ValueError):
    """An output folder that holds another run, or a file this run did not write where it must write."""


@dataclass(frozen=True)
class RunIdentity:
    """What makes a run itself: its command, its defining settings and fingerprints of its inputs."""

    command: str  # the vjepa-wm subcommand, e.g. train-ac
    settings: dict  # dotted config key -> value, for every key that changes what is computed
    inputs: dict  # name -> fingerprint (world_model.training.fingerprint): encoder, data
    defaults: dict  # the settings of the config's defaults: what a key added since a run began meant for it


def _settings(config, not_defining: set[str]) -> dict:
    flat = flatten(json.loads(json.dumps(to_dict(config))))
    return {key: value for key, value in flat.items() if key not in not_defining}


def run_identity(command: str, config, not_defining: Iterable[str], inputs: dict) -> RunIdentity:
    """The identity of a run of `command` with the dataclass `config`: its keys as dotted names with
    their (JSON) values, leaving out `not_defining`, and the fingerprints `inputs`."""
    skip = set(not_defining)
    return RunIdentity(command, _settings(config, skip), inputs, _settings(type(config)(), skip))


class RunFolder:
    """The run's view of its output folder: opening checks the record, then the run claims every
    file before writing it. `needs` are the folder-relative names the run will write."""

    def __init__(self, directory: str | os.PathLike, identity: RunIdentity, needs: Iterable[str] = (),
                 resume_changed: Iterable[str] = (), check: bool = True):
        self.directory = Path(directory)
        self.identity = identity
        self.path = self.directory / MANIFEST
        record = self._read()
        if not check:  # another rank's view, after the main rank checked (it only resumes from it)
            self.record, self._unsaved = record or self._new_record(), False
            return
        if record is not None:
            self._accept(record, list(resume_changed))
        self.record = self._new_record(written=(record or {}).get("written", []))
        self._unsaved = record != self.record
        for name in needs:
            self._refuse_foreign(self.directory / name)

    # ------------------------------------------------------------------ the record

    def _new_record(self, written: list[str] | None = None) -> dict:
        settings = self.identity.settings
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "command": self.identity.command,
            "settings_hash": hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16],
            "settings": settings, "inputs": self.identity.inputs, "written": list(written or []),
        }

    def _read(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            record = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunFolderError(f"{self.path}: unreadable run record ({err}); start the run elsewhere with --run.out_dir") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise RunFolderError(f"{self.path}: not a vjepa_wm run record; start the run elsewhere with --run.out_dir")
        if int(record.get("format_version", 0)) > FORMAT_VERSION:
            raise RunFolderError(f"{self.path}: written by a newer vjepa_wm (format {record.get('format_version')})")
        return record

    def _accept(self, record: dict, listed: list[str]) -> None:
        """Refuse another run unless `listed` (run.resume_changed) names exactly what changed. Only the
        keys of today's config are compared; one the record lacks (added since) had its default."""
        if record.get("command") != self.identity.command:
            raise RunFolderError(f"{self.directory} holds a {record.get('command')} run, not a {self.identity.command} one; "
                                 f"start elsewhere with --run.out_dir")
        now = {**self.identity.settings, **self.identity.inputs}
        recorded = {**self.identity.defaults, **record.get("settings", {}), **record.get("inputs", {})}
        changes = describe_changes({key: value for key, value in recorded.items() if key in now}, now)
        if not changes or sorted(set(listed)) == sorted(changes):
            return
        wanted = f"--run.resume_changed='[{', '.join(changes)}]'"
        if listed:
            raise RunFolderError(f"{self.directory}: run.resume_changed {listed} is not what changed ({', '.join(changes.values())}); "
                                 f"to resume, list exactly {wanted}")
        raise RunFolderError(f"{self.directory} holds another run ({', '.join(changes.values())}); start elsewhere with "
                             f"--run.out_dir, or resume it with these changes on purpose with {wanted}")

    def _write_record(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{MANIFEST}.partial"
        partial.write_text(json.dumps(self.record, indent=1) + "\n")
        os.replace(partial, self.path)

    def _name(self, path: str | os.PathLike) -> str:
        return Path(os.path.relpath(path, self.directory)).as_posix()

    # ------------------------------------------------------------------ ownership

    def owns(self, path: str | os.PathLike) -> bool:
        """Whether the run wrote `path` (or claimed it to write it)."""
        return self._name(path) in self.record["written"]

    def _refuse_foreign(self, path: Path) -> None:
        if path.exists() and not self.owns(path):
            raise RunFolderError(f"{path}: not written by this run; refusing to replace it: move it away or start the run "
                                 f"elsewhere with --run.out_dir")

    def claim(self, *paths: str | os.PathLike) -> None:
        """Record that the run is about to write `paths`; a file of that name it did not write is refused."""
        for path in paths:
            self._refuse_foreign(Path(path))
        new = [self._name(p) for p in paths if not self.owns(p)]
        if new or self._unsaved:
            self.record["written"] = sorted({*self.record["written"], *new})
            self._write_record()
            self._unsaved = False

    def release(self, path: str | os.PathLike) -> None:
        """Record that the run deleted its file `path`."""
        name = self._name(path)
        if name in self.record["written"]:
            self.record["written"] = [n for n in self.record["written"] if n != name]
            self._write_record()

    # ------------------------------------------------------------------ writing

    def write(self, name: str, write: Callable[[Path], object]) -> Path:
        """Write the file `name` atomically: `write(partial_path)`, then renamed into place."""
        target = self.directory / name
        self.claim(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        write(partial)
        os.replace(partial, target)
        return target

    def export(self, name: str, write: Callable[[Path], object]) -> Path:
        """Write the folder `name`: `write(new_folder)` makes it complete in a hidden staging folder, then
        its files replace the run's own ones in `name/` one by one (each atomically). Files of others in
        `name/` stay; if one has the name of a file the export writes, nothing is replaced."""
        target = self.directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.directory))
        try:
            made = staging / name
            write(made)
            files = sorted(p for p in made.rglob("*") if p.is_file())
            destinations = [target / p.relative_to(made) for p in files]
            self.claim(*destinations)
            for source, destination in zip(files, destinations):
                destination.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


def open_run_folder(directory: str | os.PathLike, identity: RunIdentity, needs: Iterable[str], resume_changed: Iterable[str],
                    context: DistContext) -> RunFolder:
    """The main rank checks the folder; every rank then raises the same one-line error or gets its
    view (other ranks read the record as it stands: they only resume from it)."""
    folder, error = None, None
    if context.is_main:
        try:
            folder = RunFolder(directory, identity, needs, resume_changed)
        except RunFolderError as err:
            error = str(err)
    error = gather_objects(error, context)[0]
    if error:
        raise RunFolderError(error)
    return folder or RunFolder(directory, identity, check=False)
