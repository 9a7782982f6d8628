"""The receding-horizon loop: observe -> encode -> plan -> apply the first action -> repeat.

It drives anything that implements the `Robot` contract (`embodiments.robot`): the PyBullet sim in
tests, the ROS 2 bridge on real arms. The CEM's embodiment says what a state and an action are;
the world model must have been trained for the same one. Safety rules, enforced here so every
robot gets them (the checks themselves are `planner.safety`):

* settings are checked before anything moves: `MPCConfig` when it is made, every goal's pinned
  values against the embodiment's step bounds when the loop starts;
* an observation older than `max_observation_age`, or stamped more than `clock_tolerance` ahead
  of the robot's clock (judged on ``robot.now()`` where it has one, else wall time), is never
  planned from: the robot is told to hold and the loop looks again, and stops after
  `stale_retries` such looks in a row;
* an observation with a malformed image or an impossible state is never planned from (stop);
* a plan that took so long that its observation went stale is not applied (hold, look again);
* every action passes the `SafetyEnvelope` (shape, finite, the embodiment's per-step bounds, the
  workspace box) just before ``robot.apply``; one that fails it is never applied (hold, stop);
* whatever happens, the robot is told to hold when the loop ends.

Every step's energies, action, state and timings are recorded (`MPCResult.records`); every
refusal is recorded too (`MPCResult.refusals`), and the one that ended the loop is its `stop_reason`.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from vjepa_wm.embodiments import Observation, Robot

from .cem import CEM, Plan
from .energy import energy, rollout_energy
from .goals import Goal, GoalSequence, SubgoalRule, as_goal
from .planning_model import planning_model
from .safety import Refusal, SafetyEnvelope, observation_problem, stamp_problem

__all__ = ["Goal", "Observation", "Robot", "MPCConfig", "MPCResult", "SafetyEnvelope", "StepRecord", "run_mpc",
           "warm_up"]


@dataclass
class MPCConfig:
    max_steps: int = 30  # actions to apply at most
    stop_energy: float | None = None  # stop once the view is this close to the final goal
    max_observation_age: float = 1.0  # seconds on the robot's clock an observation (and its plan) may be old
    clock_tolerance: float = 0.05  # seconds an observation may be stamped ahead of the robot's clock (skew)
    stale_retries: int = 3  # stale or early observations in a row before the loop stops
    warm_start: bool = True  # start each search from the last plan, shifted by one step
    keep_frames: bool = True  # keep every observed image (for rollout videos)
    subgoals: SubgoalRule = field(default_factory=SubgoalRule)

    def __post_init__(self):
        if self.max_steps < 1 or self.stale_retries < 0:
            raise ValueError(f"mpc.max_steps must be >= 1 and mpc.stale_retries >= 0, got {self.max_steps}, {self.stale_retries}")
        for name in ("max_observation_age", "clock_tolerance"):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                raise ValueError(f"mpc.{name} must be a positive finite number of seconds, got {value}")
        if self.stop_energy is not None and not math.isfinite(self.stop_energy):
            raise ValueError(f"mpc.stop_energy must be a finite number or None, got {self.stop_energy}")


@dataclass
class StepRecord:
    step: int
    goal_index: int
    switched_goal: bool
    observed_energy: float
    planned_energy: float
    action: list[float]
    state: list[float]
    stamp: float
    encode_seconds: float
    plan_seconds: float
    iterations: int


@dataclass
class MPCResult:
    records: list[StepRecord]
    stop_reason: str
    frames: list[np.ndarray] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # every observation or plan the loop held on, in order

    @property
    def steps(self) -> int:
        return len(self.records)

    def seconds_per_action(self) -> float:
        planned = [r.encode_seconds + r.plan_seconds for r in self.records]
        return float(np.mean(planned)) if planned else float("nan")

    def to_dict(self) -> dict:
        return {"stop_reason": self.stop_reason, "refusals": list(self.refusals), "records": [asdict(r) for r in self.records]}


def warm_up(world_model, cem: CEM) -> float:
    """One search from a blank frame toward itself, nothing applied: a process's first plan pays
    one-off costs (lazy initialisation, allocator growth, kernel choice; on a GPU the CUDA context)
    that would otherwise fall on a robot waiting for its first command. Seconds it took."""
    tic = time.perf_counter()
    model = planning_model(world_model, cem.device, cem.config.horizon)
    z = model.encode_images(np.zeros((world_model.img_size, world_model.img_size, 3), np.uint8)).to(cem.device)
    state = torch.zeros(1, cem.embodiment.state_dim, device=cem.device)
    cem.search(rollout_energy(model, z, state, z))
    return time.perf_counter() - tic


def run_mpc(
    robot: Robot,
    world_model,
    goal_images: list[np.ndarray | Goal],
    cem: CEM,
    config: MPCConfig | None = None,
    progress: bool = False,
    on_step: Callable[[StepRecord], object] | None = None,
) -> MPCResult:
    """Drive `robot` toward the goal images in order (bare images, or `Goal`s with their own settings).
    `on_step` gets each step's record as soon as its action has been applied (a live view of the
    loop, e.g. the ROS 2 planner node's feedback)."""
    config = config or MPCConfig()
    modelled = getattr(world_model, "embodiment", None)
    if modelled is not None and modelled.name != cem.embodiment.name:
        raise ValueError(f"the world model was trained for a {modelled.name}, the planner searches {cem.embodiment.name} actions")
    settings = [as_goal(goal) for goal in goal_images]
    for goal in settings:  # a pin outside the step bounds is refused before anything moves
        if goal.pinned is not None:
            cem.layout_for(goal.pinned)
    envelope = SafetyEnvelope(cem.embodiment, cem.config.workspace)
    world_model = planning_model(world_model, cem.device, cem.config.horizon)
    clock = getattr(robot, "now", time.time)
    device = cem.device
    latents = [world_model.encode_images(goal.image).to(device) for goal in settings]
    goals = GoalSequence(latents, settings, config.subgoals)
    records: list[StepRecord] = []
    frames: list[np.ndarray] = []
    refusals: list[str] = []
    warm: Plan | None = None
    stop_reason = "step budget"
    held_in_a_row = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.max_steps, desc="mpc", unit="step")

    def refuse(refusal: Refusal) -> bool:
        """Hold; True if the loop must stop."""
        nonlocal held_in_a_row
        robot.hold()
        refusals.append(refusal.reason)
        held_in_a_row += 1
        return not refusal.retry or held_in_a_row > config.stale_retries

    try:
        while len(records) < config.max_steps:
            obs = robot.observe()
            refusal = observation_problem(obs, cem.embodiment, clock(), config.max_observation_age, config.clock_tolerance)
            if refusal is not None:
                if refuse(refusal):
                    stop_reason = f"refused: {refusal.reason}"
                    break
                continue
            if config.keep_frames:
                frames.append(np.asarray(obs.image).copy())
            tic = time.perf_counter()
            z = world_model.encode_images(obs.image).to(device)
            observed = float(energy(z, goals.current)[0])
            encode_seconds = time.perf_counter() - tic
            switched = goals.update(observed)
            if switched:
                observed = float(energy(z, goals.current)[0])
                warm = None
            if goals.is_last and config.stop_energy is not None and observed <= config.stop_energy:
                stop_reason = "goal energy reached"
                break
            state = torch.as_tensor(np.asarray(obs.state, dtype=np.float32), device=device)[None]
            try:
                plan = cem.search(rollout_energy(world_model, z, state, goals.current), warm, goals.pinned, cem.position_of(state[0]))
            except FloatingPointError as err:
                refuse(Refusal(str(err), retry=False))
                stop_reason = f"refused: {err}"
                break
            action = plan.first_action.detach().cpu().numpy().astype(np.float64)
            late = stamp_problem(obs.stamp, clock(), config.max_observation_age, config.clock_tolerance)
            if late is not None:
                late = Refusal(f"plan out of date: {late.reason}", late.retry)
                warm = None
                if refuse(late):
                    stop_reason = f"refused: {late.reason}"
                    break
                continue
            unsafe = envelope.action_problem(action, obs.state)
            if unsafe is not None:
                refuse(unsafe)
                stop_reason = f"refused: {unsafe.reason}"
                break
            held_in_a_row = 0
            robot.apply(action)
            goals.count_step()
            warm = plan.shifted() if config.warm_start else None
            records.append(
                StepRecord(
                    step=len(records), goal_index=goals.index, switched_goal=switched, observed_energy=observed,
                    planned_energy=plan.energy, action=action.tolist(), state=np.asarray(obs.state, dtype=float).tolist(),
                    stamp=float(obs.stamp), encode_seconds=encode_seconds, plan_seconds=plan.seconds,
                    iterations=plan.iterations_run,
                )
            )
            if on_step is not None:
                on_step(records[-1])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(energy=f"{observed:.3f}", goal=goals.index)
    finally:
        robot.hold()
        if bar is not None:
            bar.close()
    return MPCResult(records, stop_reason, frames, refusals)
