"""`nav-process`: TartanDrive bags -> the NWM format by the published rule (GNM process_bags:
4 Hz by record time, yaw + pi/2, backwards cut, names; data_split; NWM's eval indices), checked
on hand-built drives against the published loops written out statement by statement; resuming,
ownership of the output folder, and corrupt input skipped and counted."""
from __future__ import annotations

import argparse
import json
import math
import pickle
import random
import shutil

import cv2
import numpy as np
import pytest

from vjepa_wm.commands import nav_process as command
from vjepa_wm.datasets.tartandrive import nwm_format, splits
from vjepa_wm.datasets.tartandrive.bag_writer import TartanDriveBagWriter
from vjepa_wm.datasets.tartandrive.processing import BagOutcome, NavProcessConfig, process_bags, read_samples
from vjepa_wm.datasets.tartandrive.sampling import sample_pairs
from vjepa_wm.datasets.tartandrive.trajectories import forward_segments

T0 = 1_630_600_000_000_000_000  # ns, a 2021 record time
IMAGE = "/multisense/left/image_rect_color"
ODOM = "/odometry/filtered_odom"


# ---------------------------------------------------------------------------- the published loops, literally

def published_sampling(messages, start_ns, rate=4.0):
    """GNM get_images_and_odom over (topic, t_ns, msg) of the two topics, with rospy's to_sec();
    also returns the record time of each emitted pair."""
    def to_sec(ns):
        return float(ns // 10**9) + float(ns % 10**9) / 1e9

    currtime, curr_im, curr_odom, synced, times = to_sec(start_ns), None, None, [], []
    for topic, t, msg in messages:
        if topic == IMAGE:
            curr_im = msg
        elif topic == ODOM:
            curr_odom = msg
        if to_sec(t) - currtime >= 1.0 / rate:
            if curr_im is not None and curr_odom is not None:
                synced.append((curr_im, curr_odom))
                times.append(t)
                currtime = to_sec(t)
    return synced, times


def published_cut(positions, yaws):
    """GNM filter_backwards (start_slack = end_slack = 0): the sample indices of each cut trajectory."""
    cut, start, pairs = [], True, []
    for i in range(1, len(positions)):
        dx, dy = positions[i] - positions[i - 1]
        backwards = dx * np.cos(yaws[i - 1]) + dy * np.sin(yaws[i - 1]) < 1e-5
        if not backwards:
            if start:
                pairs, start = [i - 1], False
            elif i == len(positions) - 1:
                cut.append(pairs)
            else:
                pairs.append(i - 1)
        elif not start:
            cut.append(pairs)
            start = True
    return cut


# ---------------------------------------------------------------------------- hand-built drives

def _image_code(k: int) -> tuple[int, int, int]:
    """Image k's colour: R and G spell k (robust to JPEG), B a constant that shows channel swaps."""
    return 16 * (k % 16) + 8, 16 * (k // 16) + 8, 200


def _decode_image(rgb: np.ndarray) -> int:
    r, g, b = rgb.reshape(-1, 3).mean(axis=0)
    assert b > 180 and r < 255 and g < 255
    return int(r // 16) + 16 * int(g // 16)


def _drive(path, profile=((2.5, 2.0), (1.0, -1.0), (3.0, 2.0)), odom_yaw=0.3, origin=(100.0, -50.0), ros=1,
           encoding="bgr8", with_odometry=True):
    """A bag: /cmd 100 Hz from T0 (the bag's start), images 20 Hz, odometry 50 Hz, driving along the
    heading odom_yaw + pi/2 with piecewise-constant speeds (seconds, m/s); returns the messages
    of the two sampled topics in record order, as (topic, t_ns, payload)."""
    duration = sum(seconds for seconds, _ in profile)
    heading = odom_yaw + math.pi / 2

    def travelled(tau):
        s, t = 0.0, 0.0
        for seconds, speed in profile:
            s += speed * min(max(tau - t, 0.0), seconds)
            t += seconds
        return s

    written = []
    with TartanDriveBagWriter(path, ros_version=ros) as writer:
        for i in range(int(duration * 100)):
            writer.command(T0 + i * 10_000_000, 0.5, 0.0)
        for k in range(int(duration * 20)):
            stamp = T0 + 7_000_000 + k * 50_000_000
            writer.image(stamp, np.full((16, 24, 3), _image_code(k), np.uint8), encoding=encoding)
            written.append((IMAGE, stamp, k))
        for j in range(int(duration * 50) if with_odometry else 0):
            stamp = T0 + 2_000_000 + j * 20_000_000
            s = travelled((stamp - T0) / 1e9)
            position = (origin[0] + s * math.cos(heading), origin[1] + s * math.sin(heading), 0.0)
            orientation = (0.0, 0.0, math.sin(odom_yaw / 2), math.cos(odom_yaw / 2))
            writer.odometry(stamp, position, orientation)
            written.append((ODOM, stamp, (position, orientation)))
    return sorted(written, key=lambda m: m[1])


def _config(tmp_path, **settings) -> NavProcessConfig:
    return NavProcessConfig(out=str(tmp_path / "out"), **settings)


# ---------------------------------------------------------------------------- the rules by hand

def test_sampling_instants_by_hand():
    ms = 1_000_000
    events = [("odometry", T0, "o0"), ("image", T0 + 100 * ms, "i100"), ("odometry", T0 + 240 * ms, "o240"),
              ("image", T0 + 260 * ms, "i260"), ("odometry", T0 + 400 * ms, "o400"), ("image", T0 + 500 * ms, "i500"),
              ("odometry", T0 + 510 * ms, "o510"), ("image", T0 + 759 * ms, "i759"), ("image", T0 + 760 * ms, "i760")]
    assert list(sample_pairs(events, T0)) == [(T0 + 260 * ms, "i260", "o240"), (T0 + 510 * ms, "i500", "o510"),
                                              (T0 + 760 * ms, "i760", "o510")]  # 759 - 510 < 250
    # the clock starts at the bag's start, not at the first message of the two topics
    assert [s for s, _, _ in sample_pairs(events, T0 - 100 * ms)][0] == T0 + 240 * ms
    # float seconds as rospy computes them: 249 999 900 ns counts as 0.25 s at 2021 times, 249 999 800 does not
    near = [("image", T0, "a"), ("odometry", T0, "b"), ("odometry", T0 + 249_999_800, "c"), ("odometry", T0 + 249_999_900, "d")]
    assert [odom for _, _, odom in sample_pairs(near, T0)] == ["d"]


def test_backwards_cut_by_hand():
    x = np.array([0, 1, 2, 3, 2.5, 2.6, 3.6, 4.6, 4.6, 5.6, 6.6, 7.6])  # steps F F F B F F F 0 F F F
    poses = np.stack([x, np.zeros_like(x), np.zeros_like(x)], axis=1)
    # the sample a run reaches last is dropped; the run that ends the bag loses two
    assert forward_segments(poses) == [range(0, 3), range(4, 7), range(8, 10)]
    # facing the other way, only the step 3 -> 2.5 goes forward
    assert forward_segments(poses + [0, 0, math.pi]) == [range(3, 4)]
    tiny = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [2 + 5e-6, 0, 0], [3, 0, 0]])
    assert forward_segments(tiny) == [range(0, 2)]  # a step under 1e-5 m is not forward
    assert forward_segments(poses[:1]) == [] and forward_segments(poses[:0]) == []
    assert forward_segments(poses[:2]) == []  # one forward step that ends the bag yields nothing upstream


def test_backwards_cut_matches_the_published_loop():
    rng = random.Random(0)
    for _ in range(300):
        count = rng.randrange(0, 30)
        yaw = np.array([rng.uniform(-math.pi, 2 * math.pi) for _ in range(count)])
        step = np.array([rng.choice([1.0, 1.0, -0.5, 0.0, 2e-6]) for _ in range(count)])
        heading = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
        position = np.cumsum(np.roll(heading, 1, axis=0) * step[:, None], axis=0)
        poses = np.concatenate([position, yaw[:, None]], axis=1)
        assert [list(r) for r in forward_segments(poses)] == published_cut(position, yaw)


def test_index_rules_by_hand():
    lengths = {"a_0": 20, "b_0": 11, "c_0": 80}
    assert splits.build_index(lengths, ["a_0", "b_0"], splits.NAVIGATION_EVAL) == [("a_0", 3, 8, 8), ("a_0", 11, 8, 8)]
    assert splits.build_index(lengths, ["c_0"], splits.TIME) == [("c_0", 3, -3, 64), ("c_0", 11, -11, 64)]
    train, test = splits.split_names([f"t_{i}" for i in range(1251)], seed=3)
    assert (len(train), len(test)) == (1000, 251) and not set(train) & set(test)  # NWM's TartanDrive sizes
    assert splits.split_names([f"t_{i}" for i in range(1251)][::-1], seed=3) == (train, test)  # order-free, seeded
    assert splits.rollout_names(lengths, ["b_0", "a_0", "c_0"], count=64, seed=0) == ["a_0", "c_0"]  # b_0 too short
    entries = splits.build_index({"c_0": 200}, ["c_0"], splits.NAVIGATION_EVAL)
    drawn = splits.sample_entries(entries, 5, seed=1)
    assert len(drawn) == 5 and drawn == sorted(drawn, key=entries.index)


# ---------------------------------------------------------------------------- bags end to end

@pytest.mark.parametrize("ros", [1, 2])
def test_a_bag_is_processed_exactly_as_published(tmp_path, ros):
    bag = tmp_path / "20210902_heightmaps_3" / ("20210902_91.bag" if ros == 1 else "20210902_91")
    written = _drive(bag, ros=ros)
    config = _config(tmp_path)
    report = process_bags([tmp_path / "20210902_heightmaps_3"], config, progress=False)
    assert not report.failures and not report.skipped_messages

    expected_pairs, expected_times = published_sampling(written, T0)
    samples = read_samples(bag, config, BagOutcome(str(bag), "x"))
    assert samples.stamps_ns.tolist() == expected_times and len(expected_times) > 20
    assert np.diff(expected_times).min() >= 250_000_000
    position = np.array([odom[0][:2] for _, odom in expected_pairs])
    yaw = np.array([2 * math.atan2(odom[1][2], odom[1][3]) + math.pi / 2 for _, odom in expected_pairs])
    cut = published_cut(position, yaw)
    assert len(cut) == 2  # the reversing second splits the drive

    names = [f"20210902_heightmaps_3_20210902_91_{i}" for i in range(len(cut))]
    assert nwm_format.list_trajectories(tmp_path / "out") == names
    for name, indices in zip(names, cut):
        trajectory = nwm_format.read_trajectory(tmp_path / "out" / name)
        np.testing.assert_array_equal(trajectory.position, position[indices])  # raw odometry frame, not re-zeroed
        np.testing.assert_allclose(trajectory.yaw, 0.3 + math.pi / 2, atol=1e-12)  # the TartanDrive yaw offset
        np.testing.assert_allclose(trajectory.yaw, yaw[indices], atol=1e-12)
        frame = trajectory.image(0)
        assert frame.shape == (240, 320, 3)
        assert [_decode_image(trajectory.image(i)) for i in range(len(trajectory))] == \
            [expected_pairs[i][0] for i in indices]  # the image sampled with each pose, RGB (bgr8 bytes swapped)

    test_names = nwm_format.read_traj_names(tmp_path / "out" / "splits" / "test")
    train_names = nwm_format.read_traj_names(tmp_path / "out" / "splits" / "train")
    assert sorted(test_names + train_names) == names and len(train_names) == int(0.8 * len(names))
    assert report.split_sizes["train"] == len(train_names)


def test_channel_order_and_image_size_settings(tmp_path):
    bag = tmp_path / "run" / "rgb.bag"
    _drive(bag, profile=((3.0, 2.0),), encoding="rgb8")
    published = read_samples(bag, _config(tmp_path), BagOutcome(str(bag), "x"))
    by_encoding = read_samples(bag, _config(tmp_path, channel_order="encoding", image_width=160, image_height=120),
                               BagOutcome(str(bag), "x"))

    def rgb(jpeg):
        return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]

    assert rgb(published.frames[0]).shape == (240, 320, 3) and rgb(by_encoding.frames[0]).shape == (120, 160, 3)
    assert rgb(published.frames[0])[..., 0].mean() > 180  # rgb8 bytes read as BGR, as upstream does: B lands in R
    assert rgb(by_encoding.frames[0])[..., 2].mean() > 180


def test_eval_index_and_rollout_names_follow_the_rule(tmp_path):
    for k in range(4):
        _drive(tmp_path / "day" / f"b{k}.bag", profile=((5.0 + k, 2.0),))
    report = process_bags([tmp_path / "day"], _config(tmp_path, train_fraction=0.5, rollout_trajectories=1,
                                                      navigation_eval_entries=3), progress=False)
    folder = tmp_path / "out" / "splits" / "test"
    test = nwm_format.read_traj_names(folder)
    rollout = nwm_format.read_traj_names(folder / "rollout_traj_names.txt")
    assert len(test) == 2 and len(rollout) == 1 and set(rollout) <= set(test)
    entries = nwm_format.read_eval_index(folder / "navigation_eval.pkl")
    length = len(nwm_format.read_trajectory(tmp_path / "out" / rollout[0]))
    # 4 context frames (curr_time >= 3), the goal exactly 8 ahead and inside the trajectory, every 8th start
    every = [(rollout[0], t, 8, 8) for t in range(3, length - 8, 8)]
    assert len(every) >= 1 and all(t + 8 <= length - 1 for _, t, _, _ in every)
    assert len(entries) == min(3, len(every)) and entries == [e for e in every if e in entries]
    assert nwm_format.read_eval_index(folder / "time.pkl") == []  # no trajectory of 68 frames here
    assert report.split_sizes["navigation_eval.pkl"] == len(entries)


# ---------------------------------------------------------------------------- resuming, ownership, bad input

def test_resume_skips_finished_bags_and_replaces_only_its_own_folders(tmp_path):
    for name in ("a", "b"):
        _drive(tmp_path / "day" / f"{name}.bag", profile=((3.0, 2.0),))
    config = _config(tmp_path)
    first = process_bags([tmp_path / "day"], config, progress=False)
    assert len(first.processed) == 2 and first.trajectories == 2
    out = tmp_path / "out"
    stamp = (out / "day_a_0" / "0.jpg").stat().st_mtime_ns
    again = process_bags([tmp_path / "day"], config, progress=False)
    assert again.already_done == 2 and not again.processed
    assert (out / "day_a_0" / "0.jpg").stat().st_mtime_ns == stamp

    # a run killed after bag a claimed its names and moved a folder in, before its done record
    (out / ".nav_process" / "done" / "day_a.json").unlink()
    (out / ".nav_process" / "claims").mkdir(exist_ok=True)
    (out / ".nav_process" / "claims" / "day_a.json").write_text(json.dumps(["day_a_0"]))
    (out / "day_a_0" / "left_over").write_text("from the killed run")
    # a folder bag b did not write, under bag b's name
    (out / ".nav_process" / "done" / "day_b.json").unlink()
    shutil.rmtree(out / "day_b_0")
    (out / "day_b_0").mkdir()
    (out / "day_b_0" / "mine.txt").write_text("someone else's")
    resumed = process_bags([tmp_path / "day"], config, progress=False)
    assert [o.base for o in resumed.processed] == ["day_a"] and resumed.failed == {"name_taken": 1}
    assert not (out / "day_a_0" / "left_over").exists() and len(nwm_format.read_trajectory(out / "day_a_0")) > 5
    assert (out / "day_b_0" / "mine.txt").read_text() == "someone else's"
    assert not (out / ".nav_process" / "claims" / "day_a.json").exists()


def test_refuses_an_output_folder_it_did_not_write_or_other_settings(tmp_path):
    _drive(tmp_path / "day" / "a.bag", profile=((2.0, 2.0),))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="was not written by nav-process"):
        process_bags([tmp_path / "day"], _config(tmp_path), progress=False)
    (tmp_path / "out" / "notes.txt").unlink()
    process_bags([tmp_path / "day"], _config(tmp_path), progress=False)
    with pytest.raises(ValueError, match=r"other settings \(ang_offset differ\)"):
        process_bags([tmp_path / "day"], _config(tmp_path, ang_offset=0.0), progress=False)


def _bag_with_a_corrupt_image(path):
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    good = path.with_name("source.bag")
    _drive(good, profile=((2.0, 2.0),))
    from vjepa_wm.datasets.tartandrive.bags import TartanDriveBag

    with TartanDriveBag(good) as bag, Writer(path) as writer:
        store = get_typestore(Stores.ROS1_NOETIC)
        connections = {topic: writer.add_connection(topic, info.msgtype, typestore=store) for topic, info in bag.topics.items()}
        images = 0
        for topic, stamp, raw in bag.raw_messages(list(connections)):
            images += topic == IMAGE
            writer.write(connections[topic], stamp, raw[:20] if topic == IMAGE and images == 20 else raw)
    good.unlink()


def test_corrupt_bags_and_messages_are_skipped_and_counted(tmp_path, capsys):
    day = tmp_path / "day"
    _drive(day / "good.bag", profile=((2.0, 2.0),))
    (day / "junk.bag").write_bytes(b"#ROSBAG V2.0\n" + bytes(range(256)) * 8)
    (day / "cut.bag").write_bytes((day / "good.bag").read_bytes()[:30_000])
    _drive(day / "no_odometry.bag", profile=((2.0, 2.0),), with_odometry=False)
    _bag_with_a_corrupt_image(day / "bad_image.bag")

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["nav-process", str(day), "--out", str(tmp_path / "out"), "--no-progress"])
    args.extra = []
    assert args.func(args) == 0
    printed = capsys.readouterr()
    assert "missing_topic 1, unreadable_bag 2" in printed.out and "corrupt_message 1" in printed.out
    assert "Traceback" not in printed.out + printed.err
    assert nwm_format.list_trajectories(tmp_path / "out") == ["day_bad_image_0", "day_good_0"]
    record = json.loads((tmp_path / "out" / ".nav_process" / "done" / "day_bad_image.json").read_text())
    assert record["skipped_messages"] == {"corrupt_message": 1}


def test_workers_write_what_one_process_writes(tmp_path):
    for name in ("a", "b"):
        _drive(tmp_path / "day" / f"{name}.bag", profile=((2.0, 2.0),))
    serial = process_bags([tmp_path / "day"], NavProcessConfig(out=str(tmp_path / "one")), progress=False)
    parallel = process_bags([tmp_path / "day"], NavProcessConfig(out=str(tmp_path / "two"), workers=2), progress=False)
    assert serial.trajectories == parallel.trajectories == 2
    for name in nwm_format.list_trajectories(tmp_path / "one"):
        for file in (tmp_path / "one" / name).iterdir():
            assert file.read_bytes() == (tmp_path / "two" / name / file.name).read_bytes()
    with open(tmp_path / "two" / "splits" / "test" / "navigation_eval.pkl", "rb") as f:
        assert pickle.load(f) == nwm_format.read_eval_index(tmp_path / "one" / "splits" / "test" / "navigation_eval.pkl")


def test_command_needs_bags_and_prints_its_config(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["nav-process", "--out", str(tmp_path / "o"), "--print-config"])
    args.extra = []
    assert args.func(args) == 0 and "sample_rate: 4.0" in capsys.readouterr().out
    args = parser.parse_args(["nav-process", "--out", str(tmp_path / "o")])
    args.extra = []
    with pytest.raises(ValueError, match="give one or more bags"):
        args.func(args)


def test_a_writers_partial_bag_under_a_dot_folder_is_never_found(tmp_path):
    from vjepa_wm.datasets.tartandrive.bags import find_bags

    drives = tmp_path / "drives"
    _drive(drives / "drive_00000.bag", profile=((1.0, 2.0),))
    _drive(drives / ".drive_00001.bag.partial-99999" / "drive_00001.bag", profile=((1.0, 2.0),))  # a killed writer's
    assert find_bags([drives]) == [drives / "drive_00000.bag"]
