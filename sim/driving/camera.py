"""The forward camera on the car's roof, rendered on the CPU.

TinyRenderer: headless, bit-for-bit deterministic, and triangle-bound, which is why the world is
low-poly (a 1.25 m heightfield, icosahedral rocks, three-sided grass blades) and detail lives in
textures, which cost nothing per triangle. The camera rides on the chassis, so bumps pitch and
roll the view as they do TartanDrive's. Shadows are off: they halve TinyRenderer's speed.
"""
from __future__ import annotations

import math

import numpy as np
import pybullet as pb

from .config import CameraConfig

LIGHT_DIRECTION = (0.4, -0.6, 1.0)  # towards the sun, world frame


class ForwardCamera:
    """Renders uint8 RGB ``[height, width, 3]`` frames from a car pose."""

    def __init__(self, client: int, config: CameraConfig, far: float):
        """`far`: the far clipping plane (m), beyond the farthest thing the camera can see (the sky)."""
        self.client, self.config = client, config
        self._projection = pb.computeProjectionMatrixFOV(config.fov_deg, config.width / config.height, 0.1, far,
                                                         physicsClientId=client)
        pitch = math.radians(config.pitch_deg)
        self._mount = np.array([config.forward, 0.0, config.up])
        self._look = np.array([math.cos(pitch), 0.0, -math.sin(pitch)])
        self._up = np.array([math.sin(pitch), 0.0, math.cos(pitch)])

    def render(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """The view from a car whose base is at `position` [3] with orientation `rotation` [3, 3]."""
        eye = position + rotation @ self._mount
        view = pb.computeViewMatrix(eye.tolist(), (eye + rotation @ self._look).tolist(), (rotation @ self._up).tolist(),
                                    physicsClientId=self.client)
        width, height = self.config.width, self.config.height
        _, _, rgba, _, _ = pb.getCameraImage(width, height, view, self._projection, renderer=pb.ER_TINY_RENDERER, shadow=0,
                                             lightDirection=LIGHT_DIRECTION, flags=pb.ER_NO_SEGMENTATION_MASK,
                                             physicsClientId=self.client)
        return np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[..., :3])
