"""Scripted driving: smooth random throttle and steer, turns, stops and reversing, away from obstacles.

A drive is a plan of manoeuvres drawn up front from the episode's generator: cruise (steady
throttle, the steering wandering as a driver's does), turn (a held steering angle), stop and
reverse. Every plan of 11 s or more reverses at least once, so the backwards cut of `nav-process` always has
something to cut. The commands never jump: throttle and steer follow each manoeuvre's targets
through first-order lags, as a driver's feet and hands do.

Two reflexes override the plan's steering while driving forward: near the rim of the terrain the
car turns back towards the middle, and a solid obstacle close ahead is steered around. A car that
is pushed but does not move (against a rock or tree) backs off: a reverse manoeuvre is inserted.
Everything the driver decides depends only on its generator and the car's state, so a drive is
as deterministic as the physics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["cruise", "turn", "stop", "reverse"]
KINDS: tuple[Kind, ...] = ("cruise", "turn", "stop", "reverse")
CHANCES = (0.4, 0.3, 0.15, 0.15)  # of each kind, after the first manoeuvre (always a cruise)
SECONDS = {"cruise": (3.0, 8.0), "turn": (2.0, 5.0), "stop": (1.0, 2.5), "reverse": (1.5, 3.0)}
THROTTLE_LAG, STEER_LAG = 0.5, 0.3  # s, time constants of the driver's feet and hands
WANDER = 0.25  # steady-state spread of the steering's random wander while cruising
RIM = 15.0  # m from the terrain's edge where the car turns back
LOOKAHEAD = 9.0  # m ahead an obstacle is steered around
STUCK_SECONDS = 1.5  # pushing forward this long below STUCK_SPEED means stuck
STUCK_SPEED = 0.3  # m/s


@dataclass(frozen=True)
class Manoeuvre:
    kind: Kind
    seconds: float
    throttle: float  # target in [-1, 1]
    steer: float  # target (the centre of the wander while cruising) in [-1, 1]


def plan(rng: np.random.Generator, seconds: float) -> list[Manoeuvre]:
    """Manoeuvres filling `seconds`: a cruise first, then random ones including at least one
    reverse that starts early enough to be driven whole (when the drive is long enough for one)."""
    manoeuvres = _fill(rng, [draw(rng, "cruise")], seconds)
    starts = np.cumsum([0.0] + [m.seconds for m in manoeuvres])
    room = [i for i in range(1, len(manoeuvres)) if starts[i] + SECONDS["reverse"][1] <= seconds]
    if room and not any(manoeuvres[i].kind == "reverse" for i in room):
        index = room[int(rng.integers(len(room)))]
        manoeuvres = _fill(rng, manoeuvres[:index] + [draw(rng, "reverse")], seconds)
    return manoeuvres


def _fill(rng: np.random.Generator, manoeuvres: list[Manoeuvre], seconds: float) -> list[Manoeuvre]:
    """`manoeuvres` followed by random ones until they last `seconds`."""
    manoeuvres = list(manoeuvres)
    while sum(m.seconds for m in manoeuvres) < seconds:
        manoeuvres.append(draw(rng, KINDS[int(rng.choice(len(KINDS), p=CHANCES))]))
    return manoeuvres


def draw(rng: np.random.Generator, kind: Kind) -> Manoeuvre:
    seconds = float(rng.uniform(*SECONDS[kind]))
    if kind == "cruise":
        return Manoeuvre(kind, seconds, float(rng.uniform(0.35, 0.8)), float(rng.uniform(-0.15, 0.15)))
    if kind == "turn":
        return Manoeuvre(kind, seconds, float(rng.uniform(0.3, 0.55)), float(rng.choice([-1, 1]) * rng.uniform(0.4, 1.0)))
    if kind == "stop":
        return Manoeuvre(kind, seconds, 0.0, 0.0)
    return Manoeuvre(kind, seconds, -float(rng.uniform(0.25, 0.45)), float(rng.uniform(-0.6, 0.6)))


class ScriptedDriver:
    """A `DrivingEnv` policy: call it every command tick for (throttle, steer)."""

    def __init__(self, env, rng: np.random.Generator, seconds: float):
        self.env, self.rng = env, rng
        self.manoeuvres = plan(rng, seconds)
        rates = env.config.rates
        self.dt = 1.0 / rates.command_hz
        self.index, self.elapsed = 0, 0.0
        self.throttle, self.steer, self.wander = 0.0, 0.0, 0.0
        self.stuck_for = 0.0
        self.obstacles = env.layout.solid_obstacles()
        self.half_size = env.layout.half_size

    def __call__(self) -> tuple[float, float]:
        manoeuvre = self._current()
        self.wander += -self.wander * self.dt + WANDER * math.sqrt(2 * self.dt) * float(self.rng.normal())
        throttle, steer = manoeuvre.throttle, manoeuvre.steer + (self.wander if manoeuvre.kind == "cruise" else 0.0)
        if throttle > 0:
            steer = self._reflexes(steer)
        self.throttle += (throttle - self.throttle) * self.dt / THROTTLE_LAG
        self.steer += (float(np.clip(steer, -1, 1)) - self.steer) * self.dt / STEER_LAG
        self._watch_for_stuck(throttle)
        self.elapsed += self.dt
        return self.throttle, self.steer

    def _current(self) -> Manoeuvre:
        while self.elapsed >= self.manoeuvres[self.index].seconds and self.index + 1 < len(self.manoeuvres):
            self.elapsed -= self.manoeuvres[self.index].seconds
            self.index += 1
        return self.manoeuvres[self.index]

    def _reflexes(self, steer: float) -> float:
        """The plan's steer, unless the rim or an obstacle ahead calls for another."""
        x, y, heading = self.env.state()
        forward = np.array([math.cos(heading), math.sin(heading)])
        if max(abs(x), abs(y)) > self.half_size - RIM and forward @ np.array([x, y]) > 0:
            return 1.0 if _bearing(-x, -y, heading) > 0 else -1.0
        if len(self.obstacles):
            offset = self.obstacles[:, :2] - (x, y)
            ahead = offset @ forward
            left = offset @ np.array([-forward[1], forward[0]])
            close = (ahead > 0) & (ahead < LOOKAHEAD) & (np.abs(left) < self.obstacles[:, 2] + 2.0)
            if close.any():
                nearest = int(np.argmin(np.where(close, ahead, np.inf)))
                return -1.0 if left[nearest] > 0 else 1.0
        return steer

    def _watch_for_stuck(self, throttle: float) -> None:
        """Back off when pushing forward without moving."""
        pushing = throttle > 0.2 and self.env.scene.vehicle.forward_speed() < STUCK_SPEED
        self.stuck_for = self.stuck_for + self.dt if pushing else 0.0
        if self.stuck_for > STUCK_SECONDS and self.elapsed > STUCK_SECONDS:
            remaining = self.manoeuvres[self.index].seconds - self.elapsed
            self.manoeuvres[self.index] = Manoeuvre(self.manoeuvres[self.index].kind, self.elapsed, 0.0, 0.0)
            self.manoeuvres[self.index + 1:self.index + 1] = [draw(self.rng, "reverse"),
                                                             Manoeuvre("cruise", max(remaining, 1.0), throttle, 0.0)]
            self.stuck_for = 0.0


def _bearing(dx: float, dy: float, heading: float) -> float:
    """Angle (rad, in [-pi, pi)) of the direction (dx, dy) seen from `heading`."""
    return (math.atan2(dy, dx) - heading + math.pi) % (2 * math.pi) - math.pi
