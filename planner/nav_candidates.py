"""The car's two planning modes: NWM's straight-line candidates, or one free action per step.

`nwm` is the parameterisation Navigation World Models plans with (`planning_eval.py`,
`config/data_hyperparams_plan.yaml`, read at facebookresearch/nwm): each candidate is three
numbers (nx, ny, s). (nx, ny) is one step's displacement in NWM's normalised action units,
un-normalised with its action stats (dx in [-2.5, 5], dy in [-4, 4] waypoint units onto [-1, 1])
and repeated over the horizon, all in the frame of the pose at planning time, so the path is a
straight line; the heading turns once, on the first step, to atan2(dy, dx) (its
`calculate_delta_yaw`), and the last step adds an in-place turn of s * pi. The published initial
mean and std for TartanDrive are (0.5, 0, 0) and (0.07, 0.1, 0.1): about 3.1 waypoints (2.25 m)
straight ahead per 0.25 s step.

We search those three numbers with `planner.cem.CEM` and expand each candidate into the `Car`'s
per-step actions (local-frame deltas) before the world model scores it. Two differences from the
published loop, both deliberate: the numbers are clipped to [-1, 1] (NWM's normalised range) and a
step longer than the car's step box allows is shortened along the same line, so every action
stays inside the box the safety envelope checks; and the elites are refitted on the three numbers
themselves (upstream refits on the expanded last step, whose third entry is then the heading
change in radians, later multiplied by pi again).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from vjepa_wm.embodiments import Car

from .cem import CEM, CEMConfig

NWM_ACTION_MIN = (-2.5, -4.0)  # NWM config/data_config.yaml action_stats min (dx, dy), waypoint units
NWM_ACTION_MAX = (5.0, 4.0)  # action_stats max
PlanMode = Literal["nwm", "free"]  # nwm: straight lines plus a final yaw (published); free: one action per step


@dataclass
class StraightLineConfig:
    """NWM's candidate distribution (normalised units; the defaults are its TartanDrive values)."""

    mean: tuple[float, float, float] = (0.5, 0.0, 0.0)  # initial (nx, ny, final yaw / pi)
    std: tuple[float, float, float] = (0.07, 0.1, 0.1)  # initial spread (NWM's var_scale, used as a std)

    def __post_init__(self):
        self.mean, self.std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        if len(self.mean) != 3 or not all(-1 <= v <= 1 for v in self.mean):
            raise ValueError(f"lines.mean must be 3 numbers in [-1, 1], got {self.mean}")
        if len(self.std) != 3 or not all(0 <= v < math.inf for v in self.std):
            raise ValueError(f"lines.std must be 3 non-negative finite numbers, got {self.std}")


def unnormalize(normalised: torch.Tensor) -> torch.Tensor:
    """NWM's `unnormalize_data`: ``[..., 2]`` in [-1, 1] -> (dx, dy) in waypoint units."""
    low = torch.tensor(NWM_ACTION_MIN, dtype=normalised.dtype, device=normalised.device)
    high = torch.tensor(NWM_ACTION_MAX, dtype=normalised.dtype, device=normalised.device)
    return (normalised + 1) / 2 * (high - low) + low


def normalize(step: torch.Tensor) -> torch.Tensor:
    """The inverse of `unnormalize`: (dx, dy) in waypoint units ``[..., 2]`` -> NWM's normalised units."""
    low = torch.tensor(NWM_ACTION_MIN, dtype=step.dtype, device=step.device)
    high = torch.tensor(NWM_ACTION_MAX, dtype=step.dtype, device=step.device)
    return (step - low) / (high - low) * 2 - 1


class StraightLines:
    """NWM's candidates for a `Car` over `horizon` steps (`planner.cem.Candidates`)."""

    names = ("nx", "ny", "final_yaw")
    rows = 1
    low = (-1.0, -1.0, -1.0)
    high = (1.0, 1.0, 1.0)

    def __init__(self, car: Car, horizon: int, config: StraightLineConfig | None = None):
        if horizon < 1:
            raise ValueError(f"the straight lines need a horizon of at least 1 step, got {horizon}")
        self.car, self.horizon, self.config = car, horizon, config or StraightLineConfig()

    def initial(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor([self.config.mean]), torch.tensor([self.config.std])

    def step(self, searched: torch.Tensor) -> torch.Tensor:
        """``[S, 1, 3]`` -> the repeated step (dx, dy) ``[S, 2]`` in waypoint units, shortened along its
        direction where the car's step box is smaller (the first step is (dx, dy), the others (|d|, 0))."""
        step = unnormalize(searched[:, 0, :2])
        car = self.car
        length = step.norm(dim=-1).clamp_min(1e-12)
        scale = torch.minimum(torch.ones_like(length), car.max_forward / length)
        scale = torch.minimum(scale, car.max_lateral / step[:, 1].abs().clamp_min(1e-12))
        scale = torch.minimum(scale, car.max_backward / (-step[:, 0]).clamp_min(1e-12))
        return step * scale[:, None]

    def poses(self, searched: torch.Tensor) -> torch.Tensor:
        """``[S, 1, 3]`` -> the candidate's poses after each step, ``[S, H, 3]`` (x, y in waypoint units
        in the planning pose's frame, yaw relative to it): NWM's cumsum of the repeated step, heading
        atan2(dy, dx) from the first step on and + s * pi on the last."""
        step = self.step(searched)
        k = torch.arange(1, self.horizon + 1, dtype=step.dtype, device=step.device)
        positions = k[None, :, None] * step[:, None, :]
        yaw = torch.atan2(step[:, 1], step[:, 0])[:, None].expand(-1, self.horizon).clone()
        yaw[:, -1] = yaw[:, -1] + searched[:, 0, 2] * math.pi
        return torch.cat([positions, yaw[..., None]], -1)

    def through(self, end: torch.Tensor) -> torch.Tensor:
        """The searched numbers ``[1, 3]`` of the line whose last pose is `end` (x, y in waypoint units,
        yaw): the inverse of `poses` for a line inside the box (a search centred on a given path's end)."""
        end = torch.as_tensor(end, dtype=torch.float32)
        step = end[:2] / self.horizon
        heading = torch.atan2(step[1], step[0]) if bool(step.norm() > 1e-9) else torch.tensor(0.0)
        final = torch.remainder(end[2] - heading + math.pi, 2 * math.pi) - math.pi
        return torch.cat([normalize(step), (final / math.pi)[None]]).clamp(-1, 1)[None]

    def expand(self, searched: torch.Tensor) -> torch.Tensor:
        """``[S, 1, 3]`` -> the `Car` actions ``[S, H, 3]`` that drive through `poses` (inside the step box)."""
        poses = self.poses(searched)
        metres = torch.cat([poses[..., :2] * self.car.waypoint_spacing, poses[..., 2:]], -1)
        start = torch.zeros_like(metres[:, :1])
        actions = self.car.deltas(torch.cat([start, metres], 1))
        low = torch.tensor(self.car.action_low, dtype=actions.dtype, device=actions.device)
        high = torch.tensor(self.car.action_high, dtype=actions.dtype, device=actions.device)
        return actions.clamp(low, high)  # float rounding at the bounds, or a configured max_yaw below pi


def car_cem(mode: PlanMode, config: CEMConfig, car: Car, device: torch.device | str = "cpu",
            lines: StraightLineConfig | None = None) -> CEM:
    """The CEM for a car in `mode` (nwm: over `StraightLines`; free: one action per horizon step)."""
    if mode == "nwm":
        return CEM(config, car, device, StraightLines(car, config.horizon, lines))
    if mode == "free":
        return CEM(config, car, device)
    raise ValueError(f"mode must be nwm or free, got {mode!r}")
