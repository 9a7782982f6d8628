"""TartanDrive readers on small files written in the published layouts: ROS 1 / ROS 2 bags (written
with rosbags' own writers, real topics and message types), the rosbag_to_dataset `.pt` / `.npz`
exports, NWM trajectory folders, split files and eval indices, and the restricted unpickler."""
from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vjepa_wm.datasets.tartandrive import messages, nwm_format, safe_pickle, torch_export
from vjepa_wm.datasets.tartandrive.bag_writer import TartanDriveBagWriter
from vjepa_wm.datasets.tartandrive.bags import BagError, TartanDriveBag, find_bags

T0 = 1_630_600_000_000_000_000  # ns, a 2021 record time
IMAGE = "/multisense/left/image_rect_color"
ODOM = "/odometry/filtered_odom"
CMD = "/cmd"


def _frame(height=6, width=8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write_ros1_by_hand(path: Path, corrupt_odometry: bool = False) -> dict:
    """A TartanDrive-like ROS 1 bag written with rosbags.rosbag1.Writer directly, with an IMU topic
    and a racepak topic whose custom type exists only as the definition embedded in the bag."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    store.register(get_types_from_msg("float32 throttle\nfloat32 brake", "racepak/msg/rp_controls"))
    t = store.types
    header = lambda ns, frame: t["std_msgs/msg/Header"](seq=0, stamp=t["builtin_interfaces/msg/Time"](  # noqa: E731
        sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame)
    vec = t["geometry_msgs/msg/Vector3"]
    frame = _frame()
    odometry = [(T0 + 5_000_000 + k * 20_000_000, (10.0 + k, -3.0, 0.5), (0.0, 0.0, math.sin(0.1 * k), math.cos(0.1 * k)))
                for k in range(5)]
    with Writer(path) as writer:
        image_c = writer.add_connection(IMAGE, "sensor_msgs/msg/Image", typestore=store)
        odom_c = writer.add_connection(ODOM, "nav_msgs/msg/Odometry", typestore=store)
        cmd_c = writer.add_connection(CMD, "geometry_msgs/msg/TwistStamped", typestore=store)
        imu_c = writer.add_connection("/multisense/imu/imu_data", "sensor_msgs/msg/Imu", typestore=store)
        pedal_c = writer.add_connection("/controls", "racepak/msg/rp_controls", typestore=store)
        for k in range(3):
            msg = t["sensor_msgs/msg/Image"](header=header(T0 + k * 50_000_000, "cam"), height=6, width=8, encoding="bgr8",
                                             is_bigendian=0, step=24, data=frame[..., ::-1].reshape(-1).copy())
            writer.write(image_c, T0 + k * 50_000_000, store.serialize_ros1(msg, msg.__msgtype__))
        for k, (stamp, position, quat) in enumerate(odometry):
            pose = t["geometry_msgs/msg/PoseWithCovariance"](pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](*position), orientation=t["geometry_msgs/msg/Quaternion"](*quat)),
                covariance=np.zeros(36))
            twist = t["geometry_msgs/msg/TwistWithCovariance"](twist=t["geometry_msgs/msg/Twist"](
                linear=vec(1.0, 0.0, 0.0), angular=vec(0.0, 0.0, 0.0)), covariance=np.zeros(36))
            msg = t["nav_msgs/msg/Odometry"](header=header(stamp - 1000, "odom"), child_frame_id="base", pose=pose, twist=twist)
            raw = store.serialize_ros1(msg, msg.__msgtype__)
            writer.write(odom_c, stamp, raw[:7] if corrupt_odometry and k == 2 else raw)
        for k in range(4):
            msg = t["geometry_msgs/msg/TwistStamped"](header=header(T0 + k * 10_000_000, ""), twist=t["geometry_msgs/msg/Twist"](
                linear=vec(0.1 * k, 0.0, 0.0), angular=vec(0.0, 0.0, -0.2 * k)))
            writer.write(cmd_c, T0 + k * 10_000_000, store.serialize_ros1(msg, msg.__msgtype__))
        imu = t["sensor_msgs/msg/Imu"](header=header(T0, "imu"), orientation=t["geometry_msgs/msg/Quaternion"](0, 0, 0, 1),
                                       orientation_covariance=np.zeros(9), angular_velocity=vec(0, 0, 0),
                                       angular_velocity_covariance=np.zeros(9), linear_acceleration=vec(0, 0, 9.8),
                                       linear_acceleration_covariance=np.zeros(9))
        writer.write(imu_c, T0, store.serialize_ros1(imu, imu.__msgtype__))
        pedal = t["racepak/msg/rp_controls"](throttle=250.0, brake=0.0)
        writer.write(pedal_c, T0 + 1, store.serialize_ros1(pedal, pedal.__msgtype__))
    return {"frame": frame, "odometry": odometry}


def test_ros1_bag_lists_every_topic_and_reads_the_tartandrive_ones(tmp_path):
    written = _write_ros1_by_hand(tmp_path / "20210902_91.bag")
    with TartanDriveBag(tmp_path / "20210902_91.bag") as bag:
        assert bag.ros_version == 1 and bag.start_ns == T0
        topics = {name: (info.msgtype, info.count) for name, info in bag.topics.items()}
        assert topics == {IMAGE: ("sensor_msgs/msg/Image", 3), ODOM: ("nav_msgs/msg/Odometry", 5),
                          CMD: ("geometry_msgs/msg/TwistStamped", 4), "/multisense/imu/imu_data": ("sensor_msgs/msg/Imu", 1),
                          "/controls": ("racepak/msg/rp_controls", 1)}
        odometry = bag.track(ODOM, messages.odometry_pose)
        expected = np.array([[*p, *q] for _, p, q in written["odometry"]])
        np.testing.assert_array_equal(odometry.values, expected)
        np.testing.assert_array_equal(odometry.stamps_ns, [s for s, _, _ in written["odometry"]])
        np.testing.assert_array_equal(odometry.header_ns, [s - 1000 for s, _, _ in written["odometry"]])
        commands = bag.track(CMD, messages.command)
        np.testing.assert_allclose(commands.values, [[0.1 * k, -0.2 * k] for k in range(4)])
        images = list(bag.images(IMAGE))
        assert [stamp for stamp, _ in images] == [T0 + k * 50_000_000 for k in range(3)]
        np.testing.assert_array_equal(images[0][1], written["frame"])  # bgr8 bytes -> RGB
        # "unless asked": the custom type decodes from the definition embedded in the bag
        (_, _, pedal), = bag.messages(["/controls"])
        assert pedal.throttle == 250.0


def test_a_corrupt_message_is_counted_and_the_rest_read(tmp_path):
    _write_ros1_by_hand(tmp_path / "a.bag", corrupt_odometry=True)
    with TartanDriveBag(tmp_path / "a.bag") as bag:
        odometry = bag.track(ODOM, messages.odometry_pose)
        assert odometry.skipped == 1 and len(odometry.values) == 4
        raw = [raw for _, _, raw in bag.raw_messages([ODOM])][2]
        with pytest.raises(BagError, match=r"a\.bag: corrupt /odometry/filtered_odom message"):
            bag.decode(ODOM, raw)


@pytest.mark.parametrize("ros_version", [1, 2])
def test_bag_writer_round_trip_in_ros1_and_ros2(tmp_path, ros_version):
    path = tmp_path / "run" / ("20210903_43.bag" if ros_version == 1 else "20210903_43")
    frame = _frame(5, 7, seed=1)
    with TartanDriveBagWriter(path, ros_version=ros_version) as writer:
        writer.image(T0 + 10, frame)
        writer.image(T0 + 20, frame, encoding="rgb8")
        writer.odometry(T0 + 30, (1.0, 2.0, 3.0), (0.0, 0.0, math.sin(0.35), math.cos(0.35)))
        writer.command(T0 + 40, 0.7, -0.3)
    assert find_bags([tmp_path]) == [path] and not any(p.name.startswith(".") for p in path.parent.iterdir())
    with TartanDriveBag(path) as bag:
        assert bag.ros_version == ros_version
        assert {name: info.msgtype for name, info in bag.topics.items()} == {
            IMAGE: "sensor_msgs/msg/Image", ODOM: "nav_msgs/msg/Odometry", CMD: "geometry_msgs/msg/TwistStamped"}
        (_, _, bgr), (_, _, rgb) = bag.messages([IMAGE])
        assert (bgr.encoding, rgb.encoding, bgr.step) == ("bgr8", "rgb8", 21)
        np.testing.assert_array_equal(messages.image_rgb(bgr, "encoding"), frame)
        np.testing.assert_array_equal(messages.image_rgb(bgr, "published"), frame)
        np.testing.assert_array_equal(messages.image_rgb(rgb, "encoding"), frame)
        # the published processing reads 3-channel bytes as BGR whatever the label says
        np.testing.assert_array_equal(messages.image_rgb(rgb, "published"), frame[..., ::-1])
        pose = bag.track(ODOM, messages.odometry_pose).values[0]
        assert messages.quaternion_yaw(*pose[3:]) == pytest.approx(0.7)
        np.testing.assert_allclose(bag.track(CMD, messages.command).values, [[0.7, -0.3]])


def test_image_encodings_and_row_padding():
    rgb = _frame(3, 4, seed=2)
    padded = np.zeros((3, 16), np.uint8)
    padded[:, :12] = rgb[..., ::-1].reshape(3, 12)
    msg = SimpleNamespace(encoding="bgr8", height=3, width=4, step=16, data=padded.reshape(-1))
    np.testing.assert_array_equal(messages.image_rgb(msg), rgb)
    gray = SimpleNamespace(encoding="mono8", height=3, width=4, step=4, data=rgb[..., 0].reshape(-1))
    np.testing.assert_array_equal(messages.image_rgb(gray), np.repeat(rgb[..., :1], 3, axis=2))
    bgra = np.concatenate([rgb[..., ::-1], np.full((3, 4, 1), 255, np.uint8)], axis=2)
    msg = SimpleNamespace(encoding="bgra8", height=3, width=4, step=16, data=bgra.reshape(-1))
    np.testing.assert_array_equal(messages.image_rgb(msg, "published"), rgb)
    with pytest.raises(messages.MessageError, match="holds 11 bytes"):
        messages.image_rgb(SimpleNamespace(encoding="rgb8", height=3, width=4, step=12, data=np.zeros(11, np.uint8)))
    with pytest.raises(messages.MessageError, match="unsupported image encoding '32FC1'"):
        messages.image_rgb(SimpleNamespace(encoding="32FC1", height=1, width=1, step=4, data=np.zeros(4, np.uint8)))


def test_unreadable_bag_is_one_line_naming_it(tmp_path):
    (tmp_path / "junk.bag").write_bytes(b"#ROSBAG V2.0\n" + b"\x00" * 50)
    with pytest.raises(BagError, match=r"junk\.bag: cannot open bag") as info:
        TartanDriveBag(tmp_path / "junk.bag")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------- rosbag_to_dataset exports

def _export(steps=6) -> dict:
    """A dict with the keys and shapes multi_convert_bag.py + specs/2021_atv_3.yaml save."""
    g = torch.Generator().manual_seed(0)
    state = torch.zeros(steps, 7)
    state[:, 0] = torch.arange(steps) * 0.5
    state[:, 5], state[:, 6] = math.sin(0.2), math.cos(0.2)  # yaw 0.4
    observation = {"state": state, "imu": torch.randn(steps, 20, 6, generator=g),
                   "image_rgb": torch.rand(steps, 3, 128, 128, generator=g), "heightmap": torch.rand(steps, 1, 64, 64, generator=g),
                   "rgbmap": torch.rand(steps, 3, 64, 64, generator=g), "wheel_rpm": torch.rand(steps, 20, 4, generator=g),
                   "shock_travel": torch.rand(steps, 20, 4, generator=g), "intervention": torch.zeros(steps, 1)}
    terminal = torch.zeros(steps).bool()
    terminal[-1] = True
    return {"observation": observation, "next_observation": {k: v.roll(-1, 0) for k, v in observation.items()},
            "action": torch.rand(steps, 2, generator=g) * 2 - 1, "reward": torch.zeros(steps), "terminal": terminal,
            "dt": torch.ones(steps) * 0.1}


def test_torch_export_is_read_with_the_published_keys_and_shapes(tmp_path):
    data = _export()
    torch.save(data, tmp_path / "20210902_91.pt")
    export = torch_export.read_export(tmp_path / "20210902_91.pt")
    assert len(export) == 6 and export.observation["image_rgb"].shape == (6, 3, 128, 128)
    assert export.observation["imu"].shape == (6, 20, 6) and export.terminal.dtype == np.bool_ and export.terminal[-1]
    np.testing.assert_array_equal(export.action, data["action"].numpy())
    np.testing.assert_array_equal(export.next_observation["state"], data["next_observation"]["state"].numpy())
    np.testing.assert_allclose(export.planar_poses()[:, 2], 0.4, atol=1e-6)
    np.testing.assert_allclose(export.planar_poses()[:, 0], np.arange(6) * 0.5)

    data["observation"]["imu"] = data["observation"]["imu"][:5]
    torch.save(data, tmp_path / "short.pt")
    with pytest.raises(ValueError, match=r"short\.pt: observation/imu has shape \[5, 20, 6\]"):
        torch_export.read_export(tmp_path / "short.pt")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_torch_export_with_code_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"observation": {"state": torch.zeros(2, 7)}, "dt": torch.ones(2), "evil": _RunsCode()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"evil\.pt: not a loadable torch export"):
        torch_export.read_export(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_numpy_export_as_np_savez_writes_it(tmp_path, monkeypatch):
    steps = 5
    dataset = {"observation": {"state": np.random.default_rng(0).normal(size=(steps, 7)),
                               "imu": np.zeros((steps + 1, 20, 6))},  # strided topics are padded to whole steps
               "action": np.full((steps, 2), 0.25), "dt": 0.1}
    np.savez(tmp_path / "20210902_91", **dataset)  # multi_convert_bag.py --torch False
    export = torch_export.read_export(tmp_path / "20210902_91.npz")
    np.testing.assert_array_equal(export.observation["state"], dataset["observation"]["state"])
    assert export.observation["imu"].shape == (6, 20, 6) and export.dt.tolist() == [0.1] * steps
    np.testing.assert_array_equal(export.action, dataset["action"])

    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "evil", observation={"state": _RunsCode()}, dt=0.1)
    with pytest.raises(safe_pickle.UnsafePickleError, match=r"evil\.npz\[observation\]: refused to load posix\.system"):
        torch_export.read_export(tmp_path / "evil.npz")
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------------- the NWM format and its pickles

def test_restricted_unpickler_refuses_os_system_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "traj_data.pkl").write_bytes(pickle.dumps({"position": np.zeros((2, 2)), "yaw": _RunsCode()}))
    with pytest.raises(safe_pickle.UnsafePickleError) as info:
        nwm_format.read_traj_data(tmp_path / "traj_data.pkl")
    assert str(tmp_path / "traj_data.pkl") in str(info.value) and "posix.system" in str(info.value)
    assert "\n" not in str(info.value) and not (tmp_path / "pwned").exists()
    with pytest.raises(safe_pickle.UnsafePickleError, match="builtins.eval"):
        safe_pickle.loads(b"cbuiltins\neval\n(S'1'\ntR.", "x.pkl")
    with pytest.raises(ValueError, match="x.pkl: not a readable pickle"):
        safe_pickle.loads(pickle.dumps([1, 2])[:-3], "x.pkl")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_upstream_traj_data_pickles_are_accepted(tmp_path, protocol):
    # GNM's process_bags: the columns of one [T, 3] array (views, not copies), pickle.dump'ed
    xyyaw = np.random.default_rng(protocol).normal(size=(7, 3))
    with open(tmp_path / "traj_data.pkl", "wb") as f:
        pickle.dump({"position": xyyaw[:, :2], "yaw": xyyaw[:, 2]}, f, protocol=protocol)
    position, yaw = nwm_format.read_traj_data(tmp_path / "traj_data.pkl")
    np.testing.assert_array_equal(position, xyyaw[:, :2])
    np.testing.assert_array_equal(yaw, xyyaw[:, 2])
    with open(tmp_path / "traj_data.pkl", "wb") as f:  # yaw [T, 1] and float32 are tolerated, as NWM's loader does
        pickle.dump({"position": xyyaw[:, :2].astype(np.float32), "yaw": xyyaw[:, 2:]}, f, protocol=protocol)
    position, yaw = nwm_format.read_traj_data(tmp_path / "traj_data.pkl")
    assert position.dtype == np.float64 and yaw.shape == (7,)


def test_trajectory_folder_round_trip(tmp_path):
    frames = [np.full((24, 32, 3), (200, 30, 10), np.uint8), np.full((24, 32, 3), (10, 30, 200), np.uint8)]
    position, yaw = np.array([[1.0, 2.0], [1.5, 2.5]]), np.array([0.1, 0.2])
    folder = nwm_format.write_trajectory(tmp_path / "20210903_heightmaps_2_20210903_43_0", frames, position, yaw)
    assert sorted(p.name for p in folder.iterdir()) == ["0.jpg", "1.jpg", "traj_data.pkl"]
    with open(folder / "traj_data.pkl", "rb") as f:  # what upstream's plain pickle.load sees
        plain = pickle.load(f)
    assert set(plain) == {"position", "yaw"} and plain["position"].dtype == np.float64
    trajectory = nwm_format.read_trajectory(folder)
    assert trajectory.name == folder.name and len(trajectory) == 2
    np.testing.assert_array_equal(trajectory.poses, [[1.0, 2.0, 0.1], [1.5, 2.5, 0.2]])
    assert np.abs(trajectory.image(1).astype(int) - frames[1]).max() <= 3  # RGB, through JPEG
    assert nwm_format.list_trajectories(tmp_path) == [folder.name]
    with pytest.raises(ValueError, match="already exists"):
        nwm_format.write_trajectory(folder, frames, position, yaw)
    (folder / "1.jpg").unlink()
    with pytest.raises(ValueError, match=r"1 of 2 frames missing \(first: 1\.jpg\)"):
        nwm_format.read_trajectory(folder)


def test_split_names_and_eval_index_files(tmp_path):
    nwm_format.write_traj_names(tmp_path / "test" / "traj_names.txt", ["a_0", "b_1"])
    assert (tmp_path / "test" / "traj_names.txt").read_text() == "a_0\nb_1\n"
    assert nwm_format.read_traj_names(tmp_path / "test") == ["a_0", "b_1"]
    # NWM's navigation_eval.pkl is a plain pickled list of tuples
    (tmp_path / "navigation_eval.pkl").write_bytes(pickle.dumps([("20210903_heightmaps_2_20210903_43_0", 35, 8, 8)]))
    assert nwm_format.read_eval_index(tmp_path / "navigation_eval.pkl") == [("20210903_heightmaps_2_20210903_43_0", 35, 8, 8)]
    nwm_format.write_eval_index(tmp_path / "ours.pkl", [("a_0", np.int64(3), -3, 64)])
    with open(tmp_path / "ours.pkl", "rb") as f:
        assert pickle.load(f) == [("a_0", 3, -3, 64)]
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps([("a_0", 3, 8)]))
    with pytest.raises(ValueError, match=r"bad\.pkl: bad entry"):
        nwm_format.read_eval_index(tmp_path / "bad.pkl")
