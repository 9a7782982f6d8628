"""The published rule that turns a bag's image and odometry streams into 4 Hz (image, pose) pairs.

GNM's `get_images_and_odom` (which NWM's TartanDrive data went through) walks the messages of
both topics in record-time order, keeping the latest of each. The clock starts at the bag's
start time; whenever a message (of either topic) arrives at least 1/rate seconds after the
clock and both an image and an odometry message have been seen, the latest pair is emitted and
the clock set to that message's time. The comparison is made in float seconds, as `rospy`'s
`Time.to_sec()` gives them (secs + nsecs / 1e9). At epoch times a float second has a resolution
of 2^-22 s (0.24 us), so a gap just under 1/rate (e.g. 249 999 900 ns at 4 Hz, 2021 stamps)
counts as 1/rate; `to_sec` reproduces that so samples land exactly where the published ones do.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


def to_sec(stamp_ns: int) -> float:
    """Nanoseconds -> float seconds exactly as `rospy.Time.to_sec()` computes them."""
    secs, nsecs = divmod(int(stamp_ns), 1_000_000_000)
    return float(secs) + float(nsecs) / 1e9


def sample_pairs(events: Iterable[tuple[str, int, Any]], start_ns: int, rate: float = 4.0,
                 image: str = "image", odometry: str = "odometry") -> Iterator[tuple[int, Any, Any]]:
    """(record time ns, latest image, latest odometry) at the published sampling instants.

    `events` are (kind, record time ns, payload) in record-time order, kind `image` or `odometry`
    (other kinds are ignored, as messages of other topics are never read upstream)."""
    period = 1.0 / rate
    clock = to_sec(start_ns)
    latest = {image: None, odometry: None}
    for kind, stamp, payload in events:
        if kind not in latest:
            continue
        latest[kind] = payload
        now = to_sec(stamp)
        if now - clock >= period and latest[image] is not None and latest[odometry] is not None:
            yield stamp, latest[image], latest[odometry]
            clock = now
