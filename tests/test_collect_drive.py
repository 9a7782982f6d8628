"""Scripted sim drives recorded as TartanDrive bags go through `nav-process` like the real logs.

Two short drives (14 s, 48 x 36 frames, a 40 m world) are recorded once per module; the tests
read them back with the bag reader, process them into an NWM dataset, resume, and run the
command line and the benchmark.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from vjepa_wm.datasets.tartandrive import nwm_format
from vjepa_wm.datasets.tartandrive.bags import COMMAND_TOPIC, IMAGE_TOPIC, ODOMETRY_TOPIC, TOPICS, TartanDriveBag
from vjepa_wm.datasets.tartandrive.messages import command, odometry_pose
from vjepa_wm.datasets.tartandrive.processing import NavProcessConfig, process_bags
from vjepa_wm.datasets.tartandrive.trajectories import forward_steps, planar_poses
from vjepa_wm.sim.driving.collect import MANIFEST, CollectDriveConfig, collect
from vjepa_wm.sim.driving.config import TerrainConfig

SECONDS = 14.0
TERRAIN = TerrainConfig(size=40.0, grid=33, texture_size=64, rocks=4, trees=3, grass_patches=2, clear_radius=6.0)


def _config(out, **changes) -> CollectDriveConfig:
    settings = dict(out=str(out), episodes=2, seconds=SECONDS, width=48, height=36, seed=3, terrain=TERRAIN)
    settings.update(changes)
    return CollectDriveConfig(**settings)


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    config = _config(tmp_path_factory.mktemp("drives") / "bags")
    return config, collect(config, progress=False)


@pytest.fixture(scope="module")
def processed(collected, tmp_path_factory):
    config, _ = collected
    out = tmp_path_factory.mktemp("nwm") / "data"
    nav = NavProcessConfig(out=str(out), image_width=64, image_height=48, train_fraction=0.5)  # 4 trajectories: 2 test
    return nav, process_bags([config.out], nav, progress=False)


def test_drives_have_tartandrive_topics_types_rates_and_reversing(collected):
    config, report = collected
    assert [p.name for p in report.written] == ["drive_00000.bag", "drive_00001.bag"] and report.skipped == 0
    assert all(p.parent.name == "sim_seed3" for p in report.written)
    assert report.frames == 2 * (1 + SECONDS * 20) and report.drive_seconds == 2 * SECONDS
    for path in report.written:
        with TartanDriveBag(path) as bag:
            topics = bag.topics
            assert set(topics) == {IMAGE_TOPIC, ODOMETRY_TOPIC, COMMAND_TOPIC}
            for topic, count in ((IMAGE_TOPIC, 1 + SECONDS * 20), (ODOMETRY_TOPIC, 1 + SECONDS * 50),
                                 (COMMAND_TOPIC, SECONDS * 100)):
                assert topics[topic].msgtype == TOPICS[topic][1] and topics[topic].count == count
            assert (bag.end_ns - bag.start_ns) / 1e9 == pytest.approx(SECONDS)
            _, raw = next(bag.raw_messages([IMAGE_TOPIC]))[1:]
            assert bag.decode(IMAGE_TOPIC, raw).encoding == "bgr8"  # the Multisense's byte order
            frames = np.stack([rgb for _, rgb in bag.images()])
            odometry = bag.track(ODOMETRY_TOPIC, odometry_pose)
            commands = bag.track(COMMAND_TOPIC, command)
        assert frames.shape == (1 + SECONDS * 20, 36, 48, 3)
        sky, ground = frames[:, :3].reshape(-1, 3).mean(0), frames[:, -6:].reshape(-1, 3).mean(0)
        assert sky[2] > sky[0] + 20 and ground[2] < ground[0]  # read back as RGB: blue above, earth below
        assert np.array_equal(odometry.stamps_ns, odometry.header_ns) and odometry.skipped == 0
        throttle = commands.values[:, 0]
        assert throttle.min() < -0.1 and throttle.max() > 0.3 and np.abs(commands.values).max() <= 1.0
        # 4 Hz poses with TartanDrive's yaw offset: the car went backwards somewhere, and forwards mostly.
        poses = planar_poses(odometry.values[::12])
        forward = forward_steps(poses)
        assert 0 < np.count_nonzero(~forward) < len(forward) / 2
        travelled = np.linalg.norm(np.diff(poses[:, :2], axis=0), axis=1)
        assert travelled.sum() > 10.0


def test_drives_process_into_an_nwm_dataset_with_splits_and_an_eval_index(collected, processed):
    config, _ = collected
    nav, report = processed
    assert not report.failures and len(report.processed) == 2 and report.skipped_messages == {}
    assert report.trajectories > 2  # the reversing was cut out: some bag gave several trajectories
    names = nwm_format.list_trajectories(nav.out)
    assert all(name.startswith(("sim_seed3_drive_00000_", "sim_seed3_drive_00001_")) for name in names)
    split = nav.out + "/splits"
    train = nwm_format.read_traj_names(f"{split}/train/traj_names.txt")
    test = nwm_format.read_traj_names(f"{split}/test/traj_names.txt")
    assert sorted(train + test) == names and test
    entries = nwm_format.read_eval_index(f"{split}/test/navigation_eval.pkl")
    assert entries and all(entry[0] in test and entry[2] == entry[3] == 8 for entry in entries)
    for name in names:
        trajectory = nwm_format.read_trajectory(f"{nav.out}/{name}")
        assert trajectory.image(0).shape == (48, 64, 3)
        steps = np.diff(trajectory.position, axis=0)
        long = np.linalg.norm(steps, axis=1) > 0.3
        # The yaw NWM reads (odometry yaw + pi/2) is the direction the car drove in.
        heading = trajectory.yaw[:-1][long]
        across = np.arctan2(steps[long, 1], steps[long, 0]) - heading
        assert np.all(np.abs((across + math.pi) % (2 * math.pi) - math.pi) < 0.35)


def test_collection_resumes_without_overwriting(collected, tmp_path):
    config, report = collected
    stamps = {path: path.stat().st_mtime_ns for path in report.written}
    again = collect(config, progress=False)
    assert again.written == [] and again.skipped == 2
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in stamps.items())
    with pytest.raises(ValueError, match="other settings"):
        collect(_config(config.out, width=32, height=24), progress=False)

    # A killed run's half bag (its writer's hidden staging folder) goes; a finished episode kept, a missing one redone.
    copy = _config(tmp_path / "bags", episodes=1, seconds=2.0)
    first = collect(copy, progress=False).written[0]
    original = first.read_bytes()
    dead = first.parent / f".drive_00001.bag.partial-{_dead_pid()}"
    dead.mkdir()
    (dead / "drive_00001.bag").write_bytes(b"#ROSBAG V2.0\n")
    first.unlink()
    redone = collect(_config(tmp_path / "bags", episodes=2, seconds=2.0), progress=False)
    assert [p.name for p in redone.written] == ["drive_00000.bag", "drive_00001.bag"] and not dead.exists()
    assert first.read_bytes() == original  # deterministic: the same episode, byte for byte


def test_foreign_or_bad_output_folders_are_refused(tmp_path):
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("not ours")
    with pytest.raises(ValueError, match="not written by collect-drive"):
        collect(_config(tmp_path / "theirs"), progress=False)
    with pytest.raises(ValueError, match="workers"):
        collect(_config(tmp_path / "a", workers=0), progress=False)
    with pytest.raises(ValueError, match="start_time"):
        collect(_config(tmp_path / "b", start_time="yesterday"), progress=False)
    with pytest.raises(ValueError, match="image_hz must divide"):
        collect(_config(tmp_path / "c", image_hz=30), progress=False)
    assert not any((tmp_path / name).exists() for name in "abc")


def test_command_line_collects(tmp_path, capsys):
    from vjepa_wm.cli import main

    assert main(["collect-drive", "--out", str(tmp_path), "--episodes", "1", "--seconds", "1", "--width", "32", "--height", "24",
                 "--terrain.grid", "17", "--terrain.texture-size", "32", "--no-progress"]) == 0
    assert "wrote 1 episodes" in capsys.readouterr().out
    assert json.loads((tmp_path / MANIFEST).read_text())["terrain"]["grid"] == 17
    assert (tmp_path / "sim_seed0" / "drive_00000.bag").is_file()


def test_nav_data_benchmark_writes_its_figures(tmp_path, capsys):
    from vjepa_wm.cli import main

    figures = tmp_path / "nav.json"
    assert main(["bench", "nav-data", "--episodes", "1", "--seconds", "2", "--width", "32", "--height", "24",
                 "--repeats", "1", "--json", str(figures)]) == 0
    records = json.loads(figures.read_text())
    assert [r["stage"] for r in records] == ["sim-drive", "nav-process"]
    assert all(r["bag_seconds"] == pytest.approx(2.0) and r["frames_per_s"] > 0 and r["bag_s_per_s"] > 0 for r in records)
    assert "bag_s_per_s" in capsys.readouterr().out
    assert main(["bench", "nav-data", "--workers", "two"]) == 2


def _dead_pid() -> int:
    """A process id that belongs to no running process."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1
