"""Procedurally generated videos of coloured shapes moving over a textured background.

They give the demo a clip to encode and the pretraining tests a video set with real motion and
object structure, without shipping any footage. Deterministic for a given seed.
"""
from __future__ import annotations

import numpy as np


def moving_shapes_clip(num_frames: int = 16, size: int = 128, num_shapes: int = 3, seed: int = 0) -> np.ndarray:
    """uint8 RGB ``[num_frames, size, size, 3]``: shapes bouncing inside the frame."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    phase = rng.uniform(0, 2 * np.pi, 3)
    background = np.stack(
        [0.35 + 0.15 * np.sin(2 * np.pi * (2 * xx + yy) + p) for p in phase], axis=-1
    )
    background = (background * 255).astype(np.uint8)
    radius = rng.uniform(0.08, 0.16, num_shapes) * size
    position = rng.uniform(0.2, 0.8, (num_shapes, 2)) * size
    velocity = rng.uniform(-0.04, 0.04, (num_shapes, 2)) * size
    colours = rng.integers(40, 256, (num_shapes, 3))
    kinds = rng.integers(0, 3, num_shapes)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        frame = background.copy()
        for i in range(num_shapes):
            cx, cy = (int(v) for v in position[i])
            r = int(radius[i])
            colour = tuple(int(c) for c in colours[i])
            if kinds[i] == 0:
                cv2.circle(frame, (cx, cy), r, colour, -1, lineType=cv2.LINE_AA)
            elif kinds[i] == 1:
                cv2.rectangle(frame, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
            else:
                points = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], dtype=np.int32)
                cv2.fillPoly(frame, [points], colour, lineType=cv2.LINE_AA)
        frames[t] = frame
        position += velocity
        for axis in range(2):
            low, high = radius, size - radius
            hit_low = position[:, axis] < low
            hit_high = position[:, axis] > high
            velocity[hit_low | hit_high, axis] *= -1
            position[:, axis] = np.clip(position[:, axis], low, high)
    return frames
