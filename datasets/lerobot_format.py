"""The LeRobot dataset layout (codebase v2.0 / v2.1 and v3.0), read and written with pyarrow, no LeRobot.

Why not LeRobot itself: its releases pin older torch, numpy and OpenCV, and the newest need Python
3.12; the format is plain JSON + parquet + MP4, so we read it directly.

Both layouts start at ``meta/info.json`` (codebase_version, fps, features with dtype/shape/names,
and the ``data_path`` / ``video_path`` templates). Where an episode lives:

- v2.x: one parquet and one MP4 per camera per episode (``data/chunk-{episode_chunk:03d}/
  episode_{episode_index:06d}.parquet``, ``videos/chunk-{episode_chunk:03d}/{video_key}/
  episode_{episode_index:06d}.mp4``, chunk = episode // chunks_size); the episodes are listed in
  ``meta/episodes.jsonl`` (episode_index, tasks, length), tasks in ``meta/tasks.jsonl``.
- v3.0: many episodes per file (``data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet``,
  ``videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4``); the rows of
  ``meta/episodes/chunk-*/file-*.parquet`` say which files, which global rows
  (dataset_from_index .. dataset_to_index) and which video span (from_timestamp .. to_timestamp)
  hold each episode; tasks in ``meta/tasks.parquet``, statistics in ``meta/stats.json``.

Frame i of an episode is shown at ``from_timestamp + timestamp[i]`` in its video (from 0 in v2.x).
A hub id (``owner/name``, or ``hf://datasets/owner/name``) is looked up in the local Hugging Face
cache first and downloaded only when asked. Writing v3.0 is `lerobot_writer`'s job.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

VERSIONS = ("v2.0", "v2.1", "v3.0")
EPISODES_GLOB = "meta/episodes/chunk-*/file-*.parquet"
DEFAULT_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DEFAULT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
# The per-frame bookkeeping columns every LeRobot dataset has.
INDEX_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
HUB_PREFIX = "hf://datasets/"


class LeRobotError(ValueError):
    """Not a LeRobot dataset, or one this code does not read; the message is one line."""


def resolve_root(path: str | Path, download: bool = False) -> Path:
    """The local folder of a LeRobot dataset: `path` itself when it exists, else a hub id
    (``owner/name`` or ``hf://datasets/owner/name[@revision]``) found in the Hugging Face cache
    (HF_HUB_CACHE / HF_HOME), else, only with `download`, fetched from the hub."""
    local = Path(path).expanduser()
    if local.exists():
        return local
    repo = str(path)[len(HUB_PREFIX):] if str(path).startswith(HUB_PREFIX) else str(path)
    repo, _, revision = repo.partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts) or str(path).startswith((".", "/", "~")):
        raise LeRobotError(f"{path}: no such folder, and not a hub dataset id (owner/name)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, repo_type="dataset", revision=revision or None, local_files_only=True))
    except LocalEntryNotFoundError:
        if not download:
            raise LeRobotError(f"{path}: not in the local Hugging Face cache (HF_HUB_CACHE); download it first: "
                               f"hf download {repo} --repo-type dataset") from None
    try:
        return Path(snapshot_download(repo, repo_type="dataset", revision=revision or None))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
        raise LeRobotError(f"{path}: cannot be downloaded from the hub ({type(err).__name__}: {str(err).splitlines()[0]})") from None


@dataclass(frozen=True)
class EpisodeLocation:
    """Where one episode's rows and videos are (paths relative to the dataset root)."""

    index: int
    length: int
    data_file: str
    rows: tuple[int, int] | None  # v3.0: global rows [from, to) in data_file; v2.x: the whole file
    videos: Mapping[str, tuple[str, float]]  # video key -> (file, from_timestamp)
    tasks: tuple[str, ...] = ()


@dataclass
class LeRobotDataset:
    """A LeRobot dataset's info.json and episode index (what is where; no frame data)."""

    root: Path
    info: dict
    episodes: list[EpisodeLocation] = field(default_factory=list)

    @property
    def version(self) -> str:
        return self.info["codebase_version"]

    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def features(self) -> dict:
        return self.info["features"]

    @property
    def video_keys(self) -> list[str]:
        return [key for key, spec in self.features.items() if spec.get("dtype") == "video"]

    def read_rows(self, episode: EpisodeLocation, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """The episode's rows of `columns`, in frame order: numeric columns as arrays [length, ...]
        (scalars [length]), strings as object arrays."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.root / episode.data_file
        wanted = list(dict.fromkeys([*columns, "frame_index"] + (["index"] if episode.rows else [])))
        try:
            if episode.rows is None:
                table = pq.read_table(path, columns=wanted)
            else:
                start, stop = episode.rows
                table = pq.read_table(path, columns=wanted, filters=[("index", ">=", start), ("index", "<", stop)])
        except FileNotFoundError:
            raise LeRobotError(f"{path}: missing data file of episode {episode.index}") from None
        except (pa.ArrowInvalid, OSError) as err:
            raise LeRobotError(f"{path}: unreadable parquet of episode {episode.index} ({str(err).splitlines()[0]})") from None
        if table.num_rows != episode.length:
            raise LeRobotError(f"{path}: episode {episode.index} has {table.num_rows} rows, its metadata says {episode.length}")
        order = np.argsort(table.column("frame_index").to_numpy(), kind="stable")
        return {name: column_array(table.column(name))[order] for name in columns}


def column_array(column) -> np.ndarray:
    """A parquet column as numpy: fixed-size or variable lists of equal length become [N, k]."""
    import pyarrow as pa

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = column.type
    if pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if column.null_count:
            raise LeRobotError("a list column holds nulls")
        rows = len(column)
        values = column.flatten().to_numpy(zero_copy_only=False)
        if rows and len(values) % rows:
            raise LeRobotError("a list column has rows of different lengths")
        return values.reshape(rows, -1) if rows else values.reshape(0, 0)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return np.asarray(column.to_pylist(), dtype=object)
    return column.to_numpy(zero_copy_only=False)


def read_info(root: Path) -> dict:
    """meta/info.json, checked for what the readers rely on."""
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise LeRobotError(f"{root}: not a LeRobot dataset (no meta/info.json)")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LeRobotError(f"{path}: unreadable ({err})") from None
    if not isinstance(info, dict):
        raise LeRobotError(f"{path}: expected a JSON object")
    version = info.get("codebase_version")
    if version not in VERSIONS:
        raise LeRobotError(f"{path}: codebase_version {version!r} is not supported (supported: {', '.join(VERSIONS)})")
    for key, kind in (("fps", (int, float)), ("features", dict), ("data_path", str)):
        if not isinstance(info.get(key), kind):
            raise LeRobotError(f"{path}: {key} is missing or malformed")
    if any(spec.get("dtype") == "video" for spec in info["features"].values()) and not isinstance(info.get("video_path"), str):
        raise LeRobotError(f"{path}: has video features but no video_path template")
    return info


def open_dataset(path: str | Path, download: bool = False) -> LeRobotDataset:
    """Read info.json and the episode index of the dataset at `path` (a folder or a hub id)."""
    root = resolve_root(path, download)
    info = read_info(root)
    dataset = LeRobotDataset(root, info)
    try:
        dataset.episodes = _episodes_v3(dataset) if dataset.version == "v3.0" else _episodes_v2(dataset)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        if isinstance(err, LeRobotError):
            raise
        raise LeRobotError(f"{root}: malformed episode metadata ({type(err).__name__}: {err})") from None
    return dataset


def _episodes_v2(dataset: LeRobotDataset) -> list[EpisodeLocation]:
    path = dataset.root / "meta" / "episodes.jsonl"
    if not path.is_file():
        raise LeRobotError(f"{dataset.root}: a {dataset.version} dataset needs meta/episodes.jsonl")
    chunk_size = int(dataset.info.get("chunks_size", 1000))
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        index = int(row["episode_index"])
        chunk = index // chunk_size
        data = dataset.info["data_path"].format(episode_chunk=chunk, episode_index=index)
        videos = {key: (dataset.info["video_path"].format(episode_chunk=chunk, video_key=key, episode_index=index), 0.0)
                  for key in dataset.video_keys}
        out.append(EpisodeLocation(index, int(row["length"]), data, None, videos, tuple(row.get("tasks") or ())))
    return sorted(out, key=lambda e: e.index)


def _episodes_v3(dataset: LeRobotDataset) -> list[EpisodeLocation]:
    import pyarrow.parquet as pq

    files = sorted(dataset.root.glob(EPISODES_GLOB))
    if not files:
        raise LeRobotError(f"{dataset.root}: a v3.0 dataset needs meta/episodes/chunk-*/file-*.parquet")
    keys = dataset.video_keys
    columns = ["episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index"]
    for key in keys:
        columns += [f"videos/{key}/chunk_index", f"videos/{key}/file_index", f"videos/{key}/from_timestamp"]
    out = []
    for file in files:
        names = set(pq.read_schema(file).names)
        missing = [c for c in columns if c not in names]
        if missing:
            raise LeRobotError(f"{file}: episode metadata lacks {', '.join(missing[:4])}")
        table = pq.read_table(file, columns=columns + (["tasks"] if "tasks" in names else []))
        rows = table.to_pydict()
        for i in range(table.num_rows):
            data = dataset.info["data_path"].format(chunk_index=rows["data/chunk_index"][i], file_index=rows["data/file_index"][i])
            videos = {key: (dataset.info["video_path"].format(video_key=key, chunk_index=rows[f"videos/{key}/chunk_index"][i],
                                                               file_index=rows[f"videos/{key}/file_index"][i]),
                            float(rows[f"videos/{key}/from_timestamp"][i])) for key in keys}
            span = (int(rows["dataset_from_index"][i]), int(rows["dataset_to_index"][i]))
            tasks = tuple(rows["tasks"][i] or ()) if "tasks" in rows else ()
            out.append(EpisodeLocation(int(rows["episode_index"][i]), int(rows["length"][i]), data, span, videos, tasks))
    return sorted(out, key=lambda e: e.index)

