"""TartanDrive's ROS messages as numpy: images, odometry poses, throttle/steer commands.

The message objects are what `rosbags` deserializes (ROS 1 and ROS 2 alike: the fields used
here have the same names in both). Each function checks what it reads and raises
`MessageError` (one line) for a message that cannot be what it claims, so a reader can skip and
count it instead of failing the whole log.

Images: the published GNM processing of TartanDrive (`process_tartan_img`) reshapes the bytes of
`/multisense/left/image_rect_color` to H x W x 3 without looking at `encoding` and swaps the
channels before saving, i.e. it takes the bytes as BGR whatever the message says.
``channel_order="published"`` does exactly that for every 3-channel 8-bit image;
``"encoding"`` follows each message's `encoding` instead. Both agree on `bgr8`, the Multisense
layout; they differ only for a log that is mislabelled or really RGB. Layouts the published code
cannot reshape (mono8, rgba8, bgra8) are converted by their encoding in both modes. Row padding
(`step` > width x channels) is cropped; the published reshape assumes there is none.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

ChannelOrder = Literal["published", "encoding"]

# encoding -> (channels, byte order of the channels); 8UC* are OpenCV's types, BGR as cv_bridge reads them.
ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "rgb"), "bgr8": (3, "bgr"), "8uc3": (3, "bgr"),
    "rgba8": (4, "rgba"), "bgra8": (4, "bgra"), "8uc4": (4, "bgra"),
    "mono8": (1, "gray"), "8uc1": (1, "gray"),
}


class MessageError(ValueError):
    """A message whose content cannot be read (wrong sizes, unknown encoding, non-finite numbers)."""


def image_rgb(msg, channel_order: ChannelOrder = "published") -> np.ndarray:
    """A `sensor_msgs/Image` -> uint8 ``[H, W, 3]`` RGB (a view of the message bytes where possible)."""
    encoding = str(msg.encoding).lower()
    if encoding not in ENCODINGS:
        raise MessageError(f"unsupported image encoding {msg.encoding!r} (supported: {', '.join(ENCODINGS)})")
    channels, order = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if height <= 0 or width <= 0 or step < width * channels or data.size < height * step:
        raise MessageError(f"image of {height}x{width} {msg.encoding} with step {step} holds {data.size} bytes")
    pixels = data[: height * step].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if channels == 3 and channel_order == "published":
        order = "bgr"
    return pixels[..., :3] if order.startswith("rgb") else pixels[..., 2::-1]


def odometry_pose(msg) -> np.ndarray:
    """A `nav_msgs/Odometry` -> float64 ``[7]``: x, y, z, qx, qy, qz, qw of ``pose.pose``."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    pose = np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], dtype=np.float64)
    if not np.isfinite(pose).all():
        raise MessageError("odometry pose is not finite")
    return pose


def command(msg) -> np.ndarray:
    """A `/cmd` `geometry_msgs/TwistStamped` -> float64 ``[2]``: throttle (twist.linear.x), steer
    (twist.angular.z), both in [-1, 1], the action of the `rosbag_to_dataset` export."""
    twist = msg.twist
    value = np.array([twist.linear.x, twist.angular.z], dtype=np.float64)
    if not np.isfinite(value).all():
        raise MessageError("command is not finite")
    return value


def quaternion_yaw(qx, qy, qz, qw):
    """Yaw (rad, about z, counter-clockwise) of quaternions, as the published GNM `quat_to_yaw`
    computes it: atan2(2 (w z + x y), 1 - 2 (y^2 + z^2)), without normalising first."""
    qx, qy, qz, qw = (np.asarray(v, dtype=np.float64) for v in (qx, qy, qz, qw))
    return np.arctan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))
