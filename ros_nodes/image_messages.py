"""RGB ``uint8 [H, W, 3]`` -> ``sensor_msgs/Image`` rgb8: the other direction of `images`, for
everything of ours that sends pictures (the sim's camera, the planner's debug view, goal images)."""
from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import Image

from .franka_interface import to_time


def rgb8_message(image: np.ndarray, stamp: float, frame_id: str) -> Image:
    """`image` stamped `stamp` (seconds) in `frame_id`, rows unpadded."""
    height, width = image.shape[:2]
    msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3,
                data=array.array("B", np.ascontiguousarray(image, dtype=np.uint8).tobytes()))
    msg.header.stamp, msg.header.frame_id = to_time(stamp), frame_id
    return msg
