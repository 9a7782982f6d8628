"""Cameras of the tabletop: a fixed exterior view (like DROID's side cameras) and an optional wrist view.

TinyRenderer (CPU) is the default: headless, bit-for-bit deterministic, and fast enough with the
low-poly Panda. The EGL plugin renders on the GPU where an NVIDIA EGL driver exists; elsewhere
it falls back to Mesa in software. Shadows are off: they halve TinyRenderer's speed.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pybullet as pb

from vjepa_wm.embodiments.rotations import matrix_to_euler
from vjepa_wm.sim.franka.config import SimConfig
from vjepa_wm.sim.franka.scene import Scene

# Wrist camera in the hand frame (z points from the hand towards the fingertips): beside the hand,
# a little behind the finger base, looking at a point just beyond the fingertips.
WRIST_EYE = np.array([0.09, 0.0, -0.01])
WRIST_TARGET = np.array([0.0, 0.0, 0.16])
WRIST_FOV_DEG = 75.0
LIGHT_DIRECTION = (0.4, -0.6, 1.0)


def camera_pose(eye, target, up) -> np.ndarray:
    """[6] camera pose as DROID records extrinsics: position + extrinsic xyz Euler of the OpenCV
    camera frame (x right, y down, z forward) in the robot base frame."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.concatenate([eye, matrix_to_euler(np.stack([right, down, forward], axis=1))])


def nvidia_driver_present() -> bool:
    return os.path.exists("/proc/driver/nvidia/version")


def resolve_renderer(choice: str) -> str:
    """"tiny" | "egl" | "auto" -> the renderer actually used ("auto" picks EGL only with an NVIDIA driver)."""
    if choice == "auto":
        return "egl" if nvidia_driver_present() else "tiny"
    return choice


class Cameras:
    """Renders uint8 RGB ``[size, size, 3]`` images of a `Scene`."""

    def __init__(self, scene: Scene, config: SimConfig):
        self.scene = scene
        self.size = config.image_size
        self.renderer = resolve_renderer(config.renderer)
        if self.renderer == "egl":
            spec = importlib.util.find_spec("eglRenderer")
            if spec is None or spec.origin is None:
                raise RuntimeError("renderer='egl' but PyBullet's eglRenderer plugin is not installed")
            if pb.loadPlugin(spec.origin, "_eglRendererPlugin", physicsClientId=scene.client) < 0:
                raise RuntimeError("renderer='egl' but PyBullet could not load the EGL plugin")
        cam = config.exterior
        self.exterior_pose = camera_pose(cam.eye, cam.target, cam.up)
        self._exterior_view = pb.computeViewMatrix(cam.eye, cam.target, cam.up, physicsClientId=scene.client)
        self._exterior_projection = pb.computeProjectionMatrixFOV(cam.fov_deg, 1.0, cam.near, cam.far, physicsClientId=scene.client)
        self._wrist_projection = pb.computeProjectionMatrixFOV(WRIST_FOV_DEG, 1.0, 0.01, 2.0, physicsClientId=scene.client)

    def exterior(self) -> np.ndarray:
        return self._render(self._exterior_view, self._exterior_projection)

    def wrist(self) -> np.ndarray:
        eye, target, up = self._wrist_frame()
        view = pb.computeViewMatrix(eye.tolist(), target.tolist(), up.tolist(), physicsClientId=self.scene.client)
        return self._render(view, self._wrist_projection)

    def wrist_pose(self) -> np.ndarray:
        """[6] current wrist-camera pose (see `camera_pose`)."""
        return camera_pose(*self._wrist_frame())

    def _wrist_frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position, rotation = self.scene.hand_pose()
        return position + rotation @ WRIST_EYE, position + rotation @ WRIST_TARGET, rotation @ np.array([1.0, 0.0, 0.0])

    def _render(self, view, projection) -> np.ndarray:
        renderer = pb.ER_BULLET_HARDWARE_OPENGL if self.renderer == "egl" else pb.ER_TINY_RENDERER
        _, _, rgba, _, _ = pb.getCameraImage(
            self.size, self.size, view, projection, renderer=renderer, shadow=0, lightDirection=LIGHT_DIRECTION,
            flags=pb.ER_NO_SEGMENTATION_MASK, physicsClientId=self.scene.client,
        )
        return np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8).reshape(self.size, self.size, 4)[..., :3])
