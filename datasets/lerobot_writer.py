"""Writing a LeRobot v3.0 dataset (the layout `lerobot_format` describes and reads) with pyarrow and PyAV.

Files follow LeRobot's own defaults, so its tools open them: ``meta/info.json`` (features with
dtype/shape/names, video info), ``meta/episodes/chunk-000/file-000.parquet``,
``meta/tasks.parquet`` (the task strings as a pandas index), ``meta/stats.json``, data parquet
with fixed-size float lists, and videos with a keyframe every 2 frames, as LeRobot encodes them.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Mapping

import numpy as np

from vjepa_wm.datasets.lerobot_format import DEFAULT_DATA_PATH, DEFAULT_VIDEO_PATH, EPISODES_PATH, INDEX_FEATURES, LeRobotError


def _arrow_type(spec: dict):
    import pyarrow as pa

    scalar = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "int32": pa.int32(),
              "bool": pa.bool_(), "string": pa.string()}
    if spec["dtype"] not in scalar:
        raise LeRobotError(f"feature dtype {spec['dtype']!r} cannot be written (one of {', '.join(scalar)})")
    shape = list(spec["shape"])
    if shape == [1] or spec["dtype"] == "string":
        return scalar[spec["dtype"]]
    if len(shape) != 1:
        raise LeRobotError(f"only 1-D features can be written, got shape {shape}")
    return pa.list_(scalar[spec["dtype"]], shape[0])


class _Stats:
    """Running min / max / mean / std / count of one feature (videos: per channel, in [0, 1])."""

    def __init__(self):
        self.count, self.total, self.squares, self.low, self.high = 0, 0.0, 0.0, None, None

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        self.count += len(values)
        self.total = self.total + values.sum(axis=0)
        self.squares = self.squares + (values ** 2).sum(axis=0)
        low, high = values.min(axis=0), values.max(axis=0)
        self.low = low if self.low is None else np.minimum(self.low, low)
        self.high = high if self.high is None else np.maximum(self.high, high)

    def result(self, shape: tuple[int, ...]) -> dict:
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean ** 2, 0.0))
        return {"min": np.reshape(self.low, shape).tolist(), "max": np.reshape(self.high, shape).tolist(),
                "mean": np.reshape(mean, shape).tolist(), "std": np.reshape(std, shape).tolist(), "count": [self.count]}


class LeRobotWriter:
    """Write a LeRobot v3.0 dataset episode by episode into a new folder.

    `features` are the per-frame features besides the standard index columns: non-video ones
    {name: {dtype, shape, names}} go to the data parquet, video ones ({dtype: "video", shape
    [H, W, 3]}) are encoded with `codec` into one MP4 per camera, episodes concatenated. A data or
    video file is closed and the next one started once it passes its size limit (LeRobot's 100 /
    500 MB defaults). Everything is built in a hidden sibling folder and renamed into place by
    `finish`, so a crash never leaves a half dataset and an existing folder is never touched.
    """

    def __init__(self, root: str | Path, *, fps: float, features: Mapping[str, dict], robot_type: str | None = None,
                 codec: str = "av1", gop: int = 2, chunks_size: int = 1000, data_file_mb: float = 100,
                 video_file_mb: float = 500):
        self.root = Path(root)
        if self.root.exists():
            raise LeRobotError(f"{self.root} already exists; a LeRobot dataset is written into a new folder")
        clash = sorted(set(features) & set(INDEX_FEATURES))
        if clash:
            raise LeRobotError(f"features {', '.join(clash)} are written by the writer itself")
        self.fps, self.codec, self.gop, self.robot_type = float(fps), codec, gop, robot_type
        self.features = {name: dict(spec) for name, spec in features.items()}
        self.video_keys = [name for name, spec in self.features.items() if spec["dtype"] == "video"]
        self.data_keys = [name for name in self.features if name not in self.video_keys]
        self.types = {name: _arrow_type(self.features[name]) for name in self.data_keys}
        self.chunks_size, self.data_limit, self.video_limit = chunks_size, data_file_mb * 1e6, video_file_mb * 1e6
        self.partial = self.root.with_name(f".{self.root.name}.partial-{os.getpid()}")
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict] = []
        self.frames = 0
        self.stats = {name: _Stats() for name in self.features if self.features[name]["dtype"] != "string"}
        self.stats.update({name: _Stats() for name in INDEX_FEATURES})
        self._data_file, self._data_rows, self._data_bytes = 0, [], 0
        self._videos: dict[str, list] = {key: [0, None, 0] for key in self.video_keys}  # file counter, writer, frames

    def _file_path(self, template: str, counter: int, **keys) -> str:
        return template.format(chunk_index=counter // self.chunks_size, file_index=counter % self.chunks_size, **keys)

    def add_episode(self, columns: Mapping[str, np.ndarray], videos: Mapping[str, np.ndarray], task: str = "") -> int:
        """Append one episode: `columns` {feature: [T, ...]} for every data feature and `videos`
        {video key: uint8 [T, H, W, 3]}; returns its episode index."""
        from vjepa_wm.datasets.video_av import VideoWriter

        missing = sorted((set(self.data_keys) - set(columns)) | (set(self.video_keys) - set(videos)))
        if missing:
            raise LeRobotError(f"episode lacks features {', '.join(missing)}")
        length = len(next(iter(videos.values()))) if videos else len(next(iter(columns.values())))
        if length < 1:
            raise LeRobotError("an episode needs at least one frame")
        episode = len(self.episodes)
        task_index = self.tasks.setdefault(task, len(self.tasks))
        frame_index = np.arange(length, dtype=np.int64)
        table = {"timestamp": (frame_index / self.fps).astype(np.float32), "frame_index": frame_index,
                 "episode_index": np.full(length, episode, np.int64), "index": self.frames + frame_index,
                 "task_index": np.full(length, task_index, np.int64)}
        for name in self.data_keys:
            spec, values = self.features[name], columns[name]
            values = np.asarray(values, dtype=object if spec["dtype"] == "string" else spec["dtype"])
            if spec["dtype"] != "string":
                values = values.reshape(length, *spec["shape"]) if values.size == length * int(np.prod(spec["shape"])) else values
                if values.shape != (length, *spec["shape"]):
                    raise LeRobotError(f"feature {name}: expected [{length}, {spec['shape']}], got {values.shape}")
            elif values.shape != (length,):
                raise LeRobotError(f"feature {name}: expected {length} strings, got shape {values.shape}")
            table[name] = values
        record = {"episode_index": episode, "tasks": [task], "length": length,
                  "data/chunk_index": self._data_file // self.chunks_size, "data/file_index": self._data_file % self.chunks_size,
                  "dataset_from_index": self.frames, "dataset_to_index": self.frames + length,
                  "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
        for key in self.video_keys:
            frames = np.asarray(videos[key])
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) != length:
                raise LeRobotError(f"video {key}: expected uint8 [{length}, H, W, 3], got {frames.dtype} {frames.shape}")
            shape = list(frames.shape[1:])
            declared = self.features[key].get("shape")
            if declared and list(declared) != shape:
                raise LeRobotError(f"video {key}: frames of {shape}, the feature says {declared}")
            self.features[key]["shape"] = shape
            state = self._videos[key]
            if state[1] is None:
                path = self.partial / self._file_path(DEFAULT_VIDEO_PATH, state[0], video_key=key)
                state[1], state[2] = VideoWriter(path, self.fps, self.codec, gop=self.gop), 0
            record[f"videos/{key}/chunk_index"] = state[0] // self.chunks_size
            record[f"videos/{key}/file_index"] = state[0] % self.chunks_size
            record[f"videos/{key}/from_timestamp"] = state[2] / self.fps
            record[f"videos/{key}/to_timestamp"] = (state[2] + length) / self.fps
            state[1].write(frames)
            state[2] += length
            self.stats[key].add(frames.reshape(-1, 3)[:: max(1, frames.shape[1] * frames.shape[2] // 4096)] / 255.0)
        for name, stat in self.stats.items():
            if name in table:
                stat.add(np.asarray(table[name], dtype=np.float64).reshape(length, -1))
        self._data_rows.append(table)
        self._data_bytes += sum(np.asarray(v).nbytes if v.dtype != object else sum(map(len, v)) for v in table.values())
        self.episodes.append(record)
        self.frames += length
        if self._data_bytes >= self.data_limit:
            self._flush_data()
        for key in self.video_keys:
            state = self._videos[key]
            if state[1].path.is_file() and state[1].path.stat().st_size >= self.video_limit:  # muxers write lazily
                state[1].close()
                state[0], state[1] = state[0] + 1, None
        return episode

    def _flush_data(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._data_rows:
            return
        names = [*INDEX_FEATURES, *self.data_keys]
        arrays = []
        for name in names:
            values = np.concatenate([rows[name] for rows in self._data_rows])
            kind = self.types.get(name) or _arrow_type(INDEX_FEATURES[name])
            if pa.types.is_fixed_size_list(kind):
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), kind.value_type), kind.list_size))
            else:
                values = values.reshape(len(values))  # shape [1] features are scalar columns
                arrays.append(pa.array(values.tolist() if values.dtype == object else values, kind))
        path = self.partial / self._file_path(DEFAULT_DATA_PATH, self._data_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(arrays, names=names), path)
        self._data_file, self._data_rows, self._data_bytes = self._data_file + 1, [], 0

    def finish(self) -> Path:
        """Close the files, write meta/ (info, episodes, tasks, stats) and move the dataset into place."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.episodes:
            self.abort()
            raise LeRobotError(f"{self.root}: no episodes were written")
        from vjepa_wm.datasets.video_av import probe

        self._flush_data()
        for key in self.video_keys:
            state = self._videos[key]
            if state[1] is not None:
                state[1].close()
            first = probe(self.partial / self._file_path(DEFAULT_VIDEO_PATH, 0, video_key=key))
            height, width, _ = self.features[key]["shape"]
            self.features[key].update(names=["height", "width", "channels"], info={
                "video.height": height, "video.width": width, "video.codec": self.codec, "video.pix_fmt": first.pix_fmt,
                "video.is_depth_map": False, "video.fps": int(self.fps) if self.fps.is_integer() else self.fps, "video.channels": 3, "has_audio": False})
        meta = self.partial / "meta"
        episodes = self.partial / EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), episodes)
        _write_tasks(meta / "tasks.parquet", self.tasks)
        stats = {name: stat.result(tuple(self.features.get(name, INDEX_FEATURES.get(name))["shape"]))
                 for name, stat in self.stats.items() if stat.count and name not in self.video_keys}
        for key in self.video_keys:  # per channel over sampled pixels, counted in frames as LeRobot does
            stats[key] = {**self.stats[key].result((3, 1, 1)), "count": [self.frames]}
        (meta / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        info = {"codebase_version": "v3.0", "robot_type": self.robot_type, "total_episodes": len(self.episodes),
                "total_frames": self.frames, "total_tasks": len(self.tasks), "chunks_size": self.chunks_size,
                "data_files_size_in_mb": self.data_limit / 1e6, "video_files_size_in_mb": self.video_limit / 1e6,
                "fps": int(self.fps) if self.fps.is_integer() else self.fps, "splits": {"train": f"0:{len(self.episodes)}"}, "data_path": DEFAULT_DATA_PATH,
                "video_path": DEFAULT_VIDEO_PATH if self.video_keys else None,
                "features": {**self.features, **INDEX_FEATURES}}
        (meta / "info.json").write_text(json.dumps(info, indent=4) + "\n")
        os.rename(self.partial, self.root)
        return self.root

    def abort(self) -> None:
        for state in self._videos.values():
            if state[1] is not None:
                state[1].abort()
        shutil.rmtree(self.partial, ignore_errors=True)


def _write_tasks(path: Path, tasks: Mapping[str, int]) -> None:
    """meta/tasks.parquet as pandas writes it (LeRobot reads it with pandas): the task strings are
    the index, named "task", beside a task_index column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pandas = {"index_columns": ["task"], "column_indexes": [], "creator": {"library": "pyarrow", "version": pa.__version__},
              "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
                          {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None}]}
    table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()), "task": pa.array(list(tasks), pa.string())})
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas)}), path)
