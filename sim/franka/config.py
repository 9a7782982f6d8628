"""Typed configs of the PyBullet Franka tabletop.

Frames and units: everything is expressed in the robot base frame (metres, radians). The robot
base sits at the origin on the table top (z = 0), looking along +x; the workspace centre is
0.5 m in front of it. These are the frames of the state contract, so no transform separates the
simulator's world from the state the planner sees.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vjepa_wm.embodiments.franka import CONTROL_HZ

# Rows are the recording unit of DROID (CONTROL_HZ = 15 Hz); the standard reader keeps every 4th
# row, so one planner action spans 4 rows = 4/15 s (3.75 Hz), which also leaves the position
# controller the >= 0.2 s it needs to track a step to sub-millimetre accuracy.
ROWS_PER_ACTION = 4


@dataclass(frozen=True)
class CameraConfig:
    """A pinhole camera looking from `eye` at `target` (robot base frame); vertical field of view."""

    eye: tuple[float, float, float] = (1.0, -0.65, 0.72)
    target: tuple[float, float, float] = (0.48, 0.0, 0.17)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fov_deg: float = 40.0
    near: float = 0.02
    far: float = 4.0


@dataclass(frozen=True)
class ActionLimits:
    """Per-action safety limits; a commanded delta beyond them is clipped, never rejected.

    max_translation: Euclidean norm of the xyz delta (m); the direction is kept.
    max_rotation: angle of the rotation delta (rad); the axis is kept.
    max_gripper: |gripper delta| (the gripper range is 0..1).
    workspace_low/high: box the end-effector target is clamped into (the table top is z = 0, the
        fingertips reach 7 mm below the end-effector point, so z >= 0.01 keeps them off the table).
    max_reach: horizontal distance from the base the target is clamped to. Inside the box and
        this radius IK is exact for a downward gripper; a strongly tilted and turned gripper at the
        far edge can still fall a few cm short (the state then reports where the arm really is).
    max_tilt: angle (rad) between the gripper axis and straight down; rotations that would tilt
        further are scaled back (the camera, the grasps and IK all assume a downward gripper).
    """

    max_translation: float = 0.10
    max_rotation: float = 0.5
    max_gripper: float = 1.0
    workspace_low: tuple[float, float, float] = (0.25, -0.35, 0.01)
    workspace_high: tuple[float, float, float] = (0.70, 0.35, 0.40)
    max_reach: float = 0.70
    max_tilt: float = 0.6


@dataclass(frozen=True)
class SimConfig:
    """The simulated robot, scene and cameras.

    image_size: square renders (V-JEPA 2-AC plans at 256 px).
    low_poly: draw the Panda with its collision meshes (~3.5k instead of ~100k triangles): several
        times faster on TinyRenderer, at the price of plainer link shapes.
    renderer: "tiny" (CPU TinyRenderer, deterministic, headless), "egl" (the EGL plugin: on the GPU
        where an NVIDIA EGL driver exists, else Mesa in software), "auto" (EGL only when an NVIDIA
        driver is present). The default is "tiny" everywhere because the renderers light and shade
        differently: a world model should be evaluated on the renderer its sim data was made with.
    wrist_camera: also render a camera fixed to the hand (DROID's wrist view).
    physics_hz: simulation step rate; rows are physics_hz / CONTROL_HZ substeps long.
    rows_per_action: control period of one action in rows (4 rows = 0.267 s).
    max_settle_rows: extra rows an action may take while the arm has not converged; 0 gives a
        fixed control period (what recordings use, so that rows stay aligned with actions).
    settle_tolerance: end-effector distance (m) to the IK target counted as converged.
    ik_tolerance: IK position residual (m) at which re-solving stops.
    gripper_force: force (N) of each finger motor.
    """

    image_size: int = 256
    low_poly: bool = False
    renderer: Literal["tiny", "egl", "auto"] = "tiny"
    wrist_camera: bool = False
    exterior: CameraConfig = field(default_factory=CameraConfig)
    limits: ActionLimits = field(default_factory=ActionLimits)
    physics_hz: int = 240
    rows_per_action: int = ROWS_PER_ACTION
    max_settle_rows: int = 4
    settle_tolerance: float = 3e-4
    ik_tolerance: float = 2e-5
    gripper_force: float = 60.0

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {self.image_size}")
        if self.physics_hz % CONTROL_HZ != 0:
            raise ValueError(f"physics_hz must be a multiple of {CONTROL_HZ} (the row rate), got {self.physics_hz}")
        if self.rows_per_action < 1 or self.max_settle_rows < 0:
            raise ValueError("rows_per_action must be >= 1 and max_settle_rows >= 0")
        if self.renderer not in ("tiny", "egl", "auto"):
            raise ValueError(f"renderer must be tiny, egl or auto, got {self.renderer!r}")

    @property
    def substeps_per_row(self) -> int:
        return self.physics_hz // CONTROL_HZ
