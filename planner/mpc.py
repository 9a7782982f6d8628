"""The receding-horizon loop: observe -> encode -> plan -> apply the first action -> repeat.

It drives anything that implements the `Robot` contract (`embodiments.robot`): the PyBullet sim in
tests, the ROS 2 bridge on real arms. The CEM's embodiment says what a state and an action are;
the world model must have been trained for the same one. Safety rules, enforced here so every
robot gets them:

* an observation older than `max_observation_age` (judged on the robot's clock, ``robot.now()``
  where it has one, else wall time) is never planned from: the robot is told to hold and the loop
  looks again, and stops after `stale_retries` stale looks in a row;
* an observation with a malformed image or a non-finite state is never planned from;
* a plan without a finite energy, or with a non-finite action, is never applied;
* whatever happens, the robot is told to hold when the loop ends.

Every step's energies, action, state and timings are recorded (`MPCResult.records`).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from vjepa_wm.embodiments import Embodiment, Observation, Robot

from .cem import CEM, Plan
from .energy import energy, rollout_energy
from .goals import Goal, GoalSequence, SubgoalRule, as_goal
from .planning_model import planning_model

__all__ = ["Goal", "Observation", "Robot", "MPCConfig", "MPCResult", "StepRecord", "run_mpc"]


@dataclass
class MPCConfig:
    max_steps: int = 30
    stop_energy: float | None = None  # stop once the view is this close to the final goal
    max_observation_age: float = 1.0  # seconds on the robot's clock
    stale_retries: int = 3
    warm_start: bool = True
    keep_frames: bool = True  # keep every observed image (for rollout videos)
    subgoals: SubgoalRule = field(default_factory=SubgoalRule)


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

    @property
    def steps(self) -> int:
        return len(self.records)

    def seconds_per_action(self) -> float:
        planned = [r.encode_seconds + r.plan_seconds for r in self.records]
        return float(np.mean(planned)) if planned else float("nan")

    def to_dict(self) -> dict:
        return {"stop_reason": self.stop_reason, "records": [asdict(r) for r in self.records]}


def observation_problem(obs: Observation, embodiment: Embodiment, now: float, max_age: float) -> str | None:
    """Why this observation must not be planned from, or None if it is fine."""
    image = np.asarray(obs.image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        return f"malformed image ({image.dtype} {image.shape}, expected uint8 [H, W, 3])"
    problem = embodiment.state_problem(obs.state)
    if problem is not None:
        return problem
    age = now - float(obs.stamp)
    if not np.isfinite(age) or age > max_age:
        return f"stale observation ({age:.3f} s old, limit {max_age} s)"
    return None


def run_mpc(
    robot: Robot,
    world_model,
    goal_images: list[np.ndarray | Goal],
    cem: CEM,
    config: MPCConfig | None = None,
    progress: bool = False,
) -> MPCResult:
    """Drive `robot` toward the goal images in order (bare images, or `Goal`s with their own settings)."""
    config = config or MPCConfig()
    modelled = getattr(world_model, "embodiment", None)
    if modelled is not None and modelled.name != cem.embodiment.name:
        raise ValueError(f"the world model was trained for a {modelled.name}, the planner searches {cem.embodiment.name} actions")
    world_model = planning_model(world_model, cem.device, cem.config.horizon)
    clock = getattr(robot, "now", time.time)
    device = cem.device
    settings = [as_goal(goal) for goal in goal_images]
    latents = [world_model.encode_images(goal.image).to(device) for goal in settings]
    goals = GoalSequence(latents, settings, config.subgoals)
    records: list[StepRecord] = []
    frames: list[np.ndarray] = []
    warm: Plan | None = None
    stop_reason = "step budget"
    stale_in_a_row = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.max_steps, desc="mpc", unit="step")
    try:
        while len(records) < config.max_steps:
            obs = robot.observe()
            problem = observation_problem(obs, cem.embodiment, clock(), config.max_observation_age)
            if problem is not None:
                robot.hold()
                stale_in_a_row += 1
                if stale_in_a_row > config.stale_retries or not problem.startswith("stale"):
                    stop_reason = f"refused: {problem}"
                    break
                continue
            stale_in_a_row = 0
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
                stop_reason = f"refused: {err}"
                break
            action = plan.first_action.detach().cpu().numpy().astype(np.float64)
            if not np.all(np.isfinite(action)):
                stop_reason = "refused: non-finite action"
                break
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
            if bar is not None:
                bar.update(1)
                bar.set_postfix(energy=f"{observed:.3f}", goal=goals.index)
    finally:
        robot.hold()
        if bar is not None:
            bar.close()
    return MPCResult(records, stop_reason, frames)
