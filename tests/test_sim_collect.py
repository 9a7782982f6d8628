"""Scripted collection writes DROID raw episodes that the datasets reader takes as it takes DROID."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from vjepa_wm.datasets.droid.common import DroidConfig
from vjepa_wm.datasets.droid.raw_reader import DroidRawDataset, RawEpisode, list_raw_episodes
from vjepa_wm.embodiments.franka import states_to_actions
from vjepa_wm.sim.franka.collect import EXTERIOR_SERIAL, WRIST_SERIAL, CollectConfig, collect, existing_episode

ACTIONS = 10


def _config(out, **changes) -> CollectConfig:
    settings = dict(out=str(out), episodes=2, image_size=64, low_poly=True, actions_per_episode=ACTIONS, seed=4)
    settings.update(changes)
    return CollectConfig(**settings)


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    config = _config(tmp_path_factory.mktemp("sim_droid"), wrist_camera=True)
    return config, collect(config, progress=False)


def test_two_episodes_round_trip_through_the_raw_reader(collected):
    config, report = collected
    assert len(report.written) == 2 and report.skipped == 0
    assert report.rows == 2 * (4 * ACTIONS + 1)
    episodes = list_raw_episodes(config.out)
    assert sorted(episodes) == sorted(report.written)
    for path in episodes:
        outcome = path.parent.parent.name
        metadata = json.loads(next(path.glob("metadata_*.json")).read_text())
        assert metadata["success"] == (outcome == "success") and metadata["current_task"]
        episode = RawEpisode(path, camera="left")
        assert episode.num_frames == len(episode.states) == 4 * ACTIONS + 1
        assert RawEpisode(path, camera="wrist").num_frames == episode.num_frames
        with h5py.File(path / "trajectory.h5", "r") as h5:
            joints = h5["observation/robot_state/joint_positions"][()]
            extrinsics = h5[f"observation/camera_extrinsics/{EXTERIOR_SERIAL}_left"][()]
            assert f"observation/camera_extrinsics/{WRIST_SERIAL}_left" in h5
            commanded = h5["action/cartesian_position"][()]
        assert joints.shape == (len(episode.states), 7) and np.allclose(extrinsics, extrinsics[0])
        # Rows on action boundaries (every 4th) follow the commands within the tracking accuracy
        # unless something blocked the arm; most must be close.
        reached = np.linalg.norm(episode.states[4::4, :3] - commanded[0:-1:4, :3], axis=1)
        assert np.mean(reached < 2e-3) > 0.5

    dataset = DroidRawDataset(config.out, DroidConfig(success_only=False, shuffle=False, frames_per_clip=8))
    clips = list(dataset)
    assert len(clips) == 2
    for clip in clips:
        assert clip.frames.shape == (8, 64, 64, 3) and clip.frames.std() > 5
        assert np.array_equal(np.diff(clip.indices), np.full(7, 4))  # stride 4 rows = 3.75 Hz
        assert np.allclose(clip.actions, states_to_actions(clip.states))
        steps = np.linalg.norm(clip.actions[:, :3], axis=1)
        assert steps.max() <= 0.1 + 5e-3 and steps.max() > 5e-3  # actions of the size the planner issues


def test_collection_resumes_without_overwriting(collected):
    config, report = collected
    stamps = {path: (path / "trajectory.h5").stat().st_mtime_ns for path in report.written}
    again = collect(config, progress=False)
    assert again.written == [] and again.skipped == 2
    assert all((path / "trajectory.h5").stat().st_mtime_ns == stamp for path, stamp in stamps.items())
    assert existing_episode(config, 0) in report.written and existing_episode(config, 2) is None
    with pytest.raises(ValueError, match="other settings"):
        collect(_config(config.out, image_size=32), progress=False)


def test_parallel_workers_write_the_same_episodes_as_one(tmp_path, collected):
    config, report = collected
    parallel = collect(_config(tmp_path, wrist_camera=True, workers=2), progress=False)
    assert len(parallel.written) == 2
    for index in range(2):
        ours, theirs = existing_episode(config, index), existing_episode(_config(tmp_path), index)
        assert ours.relative_to(config.out) == theirs.relative_to(tmp_path)
        with h5py.File(ours / "trajectory.h5", "r") as a, h5py.File(theirs / "trajectory.h5", "r") as b:
            key = "observation/robot_state/cartesian_position"
            assert np.array_equal(a[key][()], b[key][()])


def test_cli_collects_one_episode(tmp_path, capsys):
    from vjepa_wm.cli import main

    code = main(["collect-sim", "--out", str(tmp_path), "--episodes", "1", "--image-size", "32", "--no-progress",
                 "--actions_per_episode=4"])
    assert code == 0 and "wrote 1 episodes" in capsys.readouterr().out
    assert len(list_raw_episodes(tmp_path)) == 1
    assert main(["collect-sim", "--out", str(tmp_path), "--workers", "0", "--no-progress"]) == 2


def test_bad_collect_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="actions_per_episode"):
        collect(_config(tmp_path, actions_per_episode=1), progress=False)
    with pytest.raises(ValueError, match="start_time"):
        collect(_config(tmp_path, start_time="yesterday"), progress=False)
