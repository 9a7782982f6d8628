"""Typed configs of the PyBullet off-road car: the world, the vehicle, the forward camera and the rates.

Frames and units: the world frame is the odometry frame (metres, radians; z up, the terrain
centred on the origin). The car's state is its planar pose (x, y, heading), the heading being
the direction its chassis points, projected onto the ground plane; that is the pose
`embodiments.Car` integrates, so no transform separates the simulator from the planner's state.

Rates are TartanDrive 1.0's published topic rates (`datasets.tartandrive.bags.TOPICS`): `/cmd`
throttle and steer at 100 Hz, `/odometry/filtered_odom` at 50 Hz, the camera at 20 Hz, all on
one 200 Hz physics clock; one waypoint action lasts 0.25 s, NWM's 4 Hz step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from vjepa_wm.datasets.tartandrive.bags import COMMAND_TOPIC, IMAGE_TOPIC, ODOMETRY_TOPIC, TOPICS


@dataclass(frozen=True)
class TerrainConfig:
    """The procedural world of one episode: rolling heightfield, ground texture, sky, obstacles."""

    size: float = 100.0  # m, side of the square terrain
    grid: int = 81  # heightfield samples per side (1.25 m cells); TinyRenderer's time grows with its triangles
    relief: float = 2.0  # m, height scale of the hills (the largest of three octaves of smooth noise)
    texture_size: int = 1024  # px per side of the ground texture spread over the whole terrain
    rocks: int = 40  # boulders (solid)
    trees: int = 25  # trees (solid trunks, canopies above the car)
    grass_patches: int = 12  # patches of tall grass (seen, driven through)
    clear_radius: float = 10.0  # m around the start kept free of obstacles

    def __post_init__(self):
        if not 20.0 <= self.size <= 1000.0:
            raise ValueError(f"terrain.size must be 20..1000 m, got {self.size}")
        if not 9 <= self.grid <= 513:
            raise ValueError(f"terrain.grid must be 9..513 samples, got {self.grid}")
        if not 0.0 <= self.relief <= 20.0:
            raise ValueError(f"terrain.relief must be 0..20 m, got {self.relief}")
        if not 16 <= self.texture_size <= 4096:
            raise ValueError(f"terrain.texture_size must be 16..4096 px, got {self.texture_size}")
        for name in ("rocks", "trees", "grass_patches"):
            if getattr(self, name) < 0:
                raise ValueError(f"terrain.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.clear_radius < self.size / 2:
            raise ValueError(f"terrain.clear_radius must be in [0, size / 2), got {self.clear_radius}")


@dataclass(frozen=True)
class VehicleConfig:
    """`pybullet_data`'s racecar scaled to the size of TartanDrive's ATV (a Yamaha Viking: 2.07 m
    wheelbase, 0.32 m wheels); 4-wheel drive, Ackermann steering on the front wheels.

    Throttle in [-1, 1] is a set-point for the wheel speed (a fraction of `max_speed`, negative
    reverses), reached with at most `wheel_torque` per wheel, so hills and rocks slow the car;
    throttle 0 brakes. Steer in [-1, 1] is the centre-line steering angle as a fraction of
    `max_steer` (positive turns left); the two front wheels take their Ackermann angles and turn
    at most `steer_rate`.
    """

    scale: float = 6.0  # racecar.urdf scale factor: wheelbase 1.95 m, track 1.2 m, wheel radius 0.30 m
    body_mass: float = 600.0  # kg of the chassis (each wheel: wheel_mass)
    wheel_mass: float = 25.0  # kg per wheel
    max_speed: float = 6.0  # m/s of the wheels at throttle 1
    wheel_torque: float = 500.0  # N m per wheel at most
    max_steer: float = 0.5  # rad, centre-line steering angle at steer 1 (turning radius 3.6 m)
    steer_rate: float = 2.0  # rad/s the steering turns at most
    friction: float = 1.0  # wheel-ground friction coefficient

    def __post_init__(self):
        for name in ("scale", "body_mass", "wheel_mass", "max_speed", "wheel_torque", "max_steer", "steer_rate", "friction"):
            if not getattr(self, name) > 0:
                raise ValueError(f"vehicle.{name} must be positive, got {getattr(self, name)}")
        if self.max_steer >= 1.0:
            raise ValueError(f"vehicle.max_steer must be below 1 rad (the hinge limit), got {self.max_steer}")


@dataclass(frozen=True)
class CameraConfig:
    """The forward camera on the roof, like TartanDrive's Multisense S21 (left, rectified).

    Frames are rendered at `width` x `height` on the CPU (TinyRenderer); 4:3 like NWM's 320 x 240,
    into which `nav-process` resizes them. The Multisense's 1024 x 544 frames are squeezed into
    4:3 by that resize; a 4:3 render at the same vertical field of view needs no squeeze.
    """

    width: int = 160  # px
    height: int = 120  # px
    fov_deg: float = 60.0  # vertical field of view (the Multisense: 59 deg)
    forward: float = 1.2  # m ahead of the rear axle
    up: float = 1.9  # m above the rear axle's ground point
    pitch_deg: float = 8.0  # looking down this much

    def __post_init__(self):
        if not (16 <= self.width <= 2048 and 16 <= self.height <= 2048):
            raise ValueError(f"camera size must be 16..2048 px per side, got {self.width}x{self.height}")
        if not 10.0 <= self.fov_deg <= 150.0:
            raise ValueError(f"camera.fov_deg must be 10..150, got {self.fov_deg}")


@dataclass(frozen=True)
class RatesConfig:
    """Clocks, in Hz; each must divide `physics_hz`. Defaults: TartanDrive's published topic rates."""

    physics_hz: int = 200  # physics steps per second
    command_hz: int = int(TOPICS[COMMAND_TOPIC][2])  # /cmd: throttle and steer (TartanDrive: 100)
    odometry_hz: int = int(TOPICS[ODOMETRY_TOPIC][2])  # /odometry/filtered_odom (TartanDrive: 50)
    image_hz: int = int(TOPICS[IMAGE_TOPIC][2])  # camera frames (TartanDrive: 20); 4 keeps only what nav-process samples
    step_hz: int = 4  # waypoint actions per second (NWM's 4 Hz)

    def __post_init__(self):
        for name in ("command_hz", "odometry_hz", "image_hz", "step_hz"):
            rate = getattr(self, name)
            if rate < 1 or self.physics_hz % rate:
                raise ValueError(f"rates.{name} must be a positive divisor of rates.physics_hz ({self.physics_hz}), got {rate}")
        if self.command_hz % self.step_hz:
            raise ValueError(f"rates.step_hz must divide rates.command_hz ({self.command_hz}): a waypoint step spans whole "
                             f"command periods, got {self.step_hz}")

    def ticks(self, hz: int) -> int:
        """Physics ticks per period of a clock at `hz`."""
        return self.physics_hz // hz


@dataclass(frozen=True)
class DrivingConfig:
    """The simulated car, its world and its sensors."""

    terrain: TerrainConfig = field(default_factory=TerrainConfig)
    vehicle: VehicleConfig = field(default_factory=VehicleConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    rates: RatesConfig = field(default_factory=RatesConfig)
