"""Navigation replay: plan a car's path to a goal image with the world model, score it against the drive.

NWM's planning protocol (`planning_eval.py`, see ../shared/reference/datasets.md §6.3): for each
entry (traj, t, min_goal, max_goal) of an eval index, 4 context frames t-3..t, the goal frame
t+g (g drawn in [min_goal, max_goal]; 8 in `navigation_eval.pkl`, 2 s at 4 Hz), an 8-step plan,
scored against the 8 driven waypoints in the frame of the pose at t (`trajectory_metrics`: ATE,
RPE, final position and yaw error, in waypoint units and metres). The world model sees the
context as history (its KV cache) and the CEM (`planner.nav_candidates`: NWM's straight lines or
free steps) minimises the planner's energy to the goal latent. The states it is given are poses
in metres relative to the pose at t, so every plan starts at (0, 0, 0).

Model-free baselines are scored in the same run, on the same entries: constant velocity (the last
context step repeated), NWM's initial mean (the straight line CEM starts from), and the best of N
straight lines drawn from that initial distribution, chosen by ATE against the true path (an
upper reference for what one round of straight-line sampling can reach; it sees the answer).

`replay`: receding horizon along one whole trajectory, planning at every step toward the frame 8
ahead (warm-started from the previous plan); a top-down picture of planned versus driven paths and
a video (current view | goal | path overlay).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from vjepa_wm.datasets.tartandrive.nwm_format import NWMTrajectory, read_eval_index, read_trajectory
from vjepa_wm.embodiments import Car
from vjepa_wm.planner.cem import CEM, CEMConfig, Plan
from vjepa_wm.planner.energy import rollout_energy
from vjepa_wm.planner.nav_candidates import PlanMode, StraightLineConfig, StraightLines, car_cem
from vjepa_wm.world_model.training.distributed import check_device

from .nav_landscape import encoder_ranking, landscape_figures, landscape_summary
from .trajectory_metrics import METRICS, TRANSLATION, path_errors

METHODS = ("model", "constant_velocity", "nwm_mean", "best_line")  # rows of the table, in order


def nwm_cem_config() -> CEMConfig:
    """NWM's published budget: 120 candidates, top 5, one iteration, the refit without momentum."""
    return CEMConfig(samples=120, iterations=1, elites=5, horizon=8, momentum_mean=0.0, momentum_std=0.0)


@dataclass
class NavReplayConfig:
    """Navigation replay on NWM-format data: plans to goal images scored against the driven paths."""

    data: str = ""  # NWM-format dataset folder (one folder per trajectory)
    index: str = ""  # eval index pickle, e.g. DATA/splits/test/navigation_eval.pkl
    model: str = ""  # car world model directory (our format) or its hub id ("": the bundled sim car model)
    mode: PlanMode = "nwm"  # nwm: straight lines plus a final yaw (published); free: one action per step
    context: int = 4  # context frames (NWM: 4)
    limit: int | None = None  # score only the first N index entries (null: all)
    random_lines: int = 120  # straight lines drawn for the best-of-N reference
    cem: CEMConfig = field(default_factory=nwm_cem_config)  # the search (horizon = plan length, NWM: 8)
    lines: StraightLineConfig = field(default_factory=StraightLineConfig)  # NWM's candidate distribution
    car: Car = field(default_factory=Car)  # step bounds of every plan (the waypoint spacing is the model's)
    # prior: the CEM's own initial mean (NWM's line; zero steps); context_velocity: centred on constant
    # velocity (nwm: the line to its last pose); a replay's later plans are warm-started either way
    start: Literal["prior", "context_velocity"] = "prior"
    context_std: tuple[float, float, float] = (0.3, 0.05, 0.1)  # free mode, context_velocity: spread (dx, dy, dyaw a step)
    landscape: bool = False  # also score the random lines, the driven and the constant-velocity actions with the energy (nav_landscape)
    replay: bool = False  # also replay one trajectory with a plan at every step (plot + video)
    trajectory: str | None = None  # trajectory to replay (null: the index's first)
    out: str = "outputs/nav_replay"  # folder for the replay's plot and video
    fps: float = 4.0  # frame rate of the replay video
    device: str = "cpu"  # torch device of the planner
    seed: int = 0  # seeds the searches (in place of cem.seed), the goal offsets and the random lines
    json: str | None = None  # write the table and every plan's figures here as JSON

    def __post_init__(self):
        self.context_std = check_start(self.start, self.context_std)
        if self.mode not in ("nwm", "free"):
            raise ValueError(f"mode must be nwm or free, got {self.mode!r}")
        for name, minimum in (("context", 1), ("random_lines", 1)):
            if getattr(self, name) < minimum:
                raise ValueError(f"{name} must be at least {minimum}, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be at least 1 (or null), got {self.limit}")
        if not 0 < self.fps < math.inf:
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        check_device(self.device, "device", auto=False)


@dataclass
class Situation:
    """One planning problem: what the planner sees and the drive it is scored against."""

    context: np.ndarray  # uint8 [C, H, W, 3], the last one is now
    goal_image: np.ndarray  # uint8 [H, W, 3]
    context_poses: np.ndarray  # [C, 3] metres / rad relative to the pose now (the last is 0, 0, 0)
    truth: np.ndarray  # [horizon, 3] driven poses after each step, waypoint units / rad, in the frame now
    goal: np.ndarray  # [3] goal pose, same frame


def relative_poses(poses: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """``[T, 3]`` odometry poses seen from `origin` (x, y in its frame, yaw relative, wrapped)."""
    c, s = math.cos(origin[2]), math.sin(origin[2])
    d = poses[:, :2] - origin[:2]
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], 1)
    return np.concatenate([local, ((poses[:, 2] - origin[2] + np.pi) % (2 * np.pi) - np.pi)[:, None]], 1)


def situation(trajectory: NWMTrajectory, now: int, goal_offset: int, context: int, horizon: int, spacing: float) -> Situation:
    poses = trajectory.poses
    local = relative_poses(poses, poses[now])
    to_units = np.array([1 / spacing, 1 / spacing, 1.0])
    return Situation(
        context=np.stack([trajectory.image(i) for i in range(now - context + 1, now + 1)]),
        goal_image=trajectory.image(now + goal_offset),
        context_poses=local[now - context + 1 : now + 1],
        truth=local[now + 1 : now + horizon + 1] * to_units,
        goal=local[now + goal_offset] * to_units,
    )


class NavPlanner:
    """The world model and the car CEM, planning one `Situation` at a time."""

    def __init__(self, model, config: NavReplayConfig):
        self.model, self.config = model, config
        self.car: Car = replace(config.car, waypoint_spacing=model.embodiment.waypoint_spacing)
        search = replace(config.cem, seed=config.seed)  # --seed seeds the searches (as nav-drive's episode seeds do)
        self.cem: CEM = car_cem(config.mode, search, self.car, config.device, config.lines)
        self.lines = StraightLines(self.car, config.cem.horizon, config.lines)  # NWM's candidate distribution
        self.metres_per_unit = np.array([self.car.waypoint_spacing, self.car.waypoint_spacing, 1.0])  # x, y, yaw

    def plan(self, s: Situation, warm: Plan | None = None) -> tuple[Plan, float]:
        """The plan and its seconds (encoding the context and goal included)."""
        plan, seconds, _ = self.plan_with_objective(s, warm)
        return plan, seconds

    def plan_with_objective(self, s: Situation, warm: Plan | None = None):
        """`plan`, plus the energy it minimised (to score other actions on the same encoding)."""
        device = self.cem.device
        start = time.perf_counter()
        score = self.objective(s)
        if warm is None and self.config.start == "context_velocity":
            warm = self.context_start(s)
        plan = self.cem.search(score, warm)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return plan, time.perf_counter() - start, score

    def context_start(self, s: Situation) -> Plan:
        """A search centred on constant velocity (`--start context_velocity`), as a warm start."""
        return velocity_start(self.constant_velocity(s), self.config.mode, self.lines, self.config.context_std)

    def constant_velocity(self, s: Situation) -> np.ndarray:
        """The constant-velocity baseline's car actions for `s` (its last context step repeated)."""
        return constant_velocity_actions(self.car, s.context_poses, self.config.cem.horizon)

    def objective(self, s: Situation):
        """The CEM's energy for `s`: the context encoded into the KV cache, the goal encoded."""
        model, device, n = self.model, self.cem.device, self.model.tokens_per_frame
        z = model.encode_images(s.context).to(device)
        z_goal = model.encode_images(s.goal_image).to(device)
        states = torch.as_tensor(s.context_poses, dtype=torch.float32, device=device)
        cache = None
        if len(states) > 1:
            cache = model.observe_history(z[:, : -n], self.car.deltas(states)[None], states[None, :-1])
        return rollout_energy(model, z[:, -n:], states[-1:], z_goal, cache)

    def actions_of(self, path: np.ndarray) -> np.ndarray:
        """``[H, 3]`` poses in waypoint units / rad from (0, 0, 0) -> the Car actions that drive them."""
        return self.car.deltas(np.concatenate([np.zeros((1, 3)), path * self.metres_per_unit]))

    def path(self, actions) -> np.ndarray:
        """``[H, 3]`` Car actions -> poses after each step, waypoint units / rad, from (0, 0, 0)."""
        poses = self.car.rollout(np.zeros(3), np.asarray(actions, dtype=np.float64))[1:]
        return poses / self.metres_per_unit


def constant_velocity_actions(car: Car, context_poses: np.ndarray, horizon: int) -> np.ndarray:
    """The last step of the context poses (metres / rad) repeated over the horizon (inside the step box)."""
    last = car.deltas(context_poses[-2:]) if len(context_poses) > 1 else np.zeros((1, 3))
    return np.repeat(np.clip(last, car.action_low, car.action_high), horizon, 0)


def check_start(start: str, context_std) -> tuple[float, float, float]:
    """Validates a `start` option and its free-mode spread; returns the spread as floats."""
    if start not in ("prior", "context_velocity"):
        raise ValueError(f"start must be prior or context_velocity, got {start!r}")
    std = tuple(float(v) for v in context_std)
    if len(std) != 3 or not all(0 <= v < math.inf for v in std):
        raise ValueError(f"context_std must be 3 non-negative finite numbers, got {std}")
    return std


def velocity_start(actions: np.ndarray, mode: PlanMode, lines: StraightLines, context_std) -> Plan:
    """A warm start centred on the car actions `actions` (constant velocity): free mode, their steps
    with spread `context_std`; nwm mode, NWM's line to their last pose with the lines' own std."""
    car = lines.car
    if mode == "nwm":
        end = car.rollout(np.zeros(3), np.asarray(actions, dtype=np.float64))[-1]
        end = end / np.array([car.waypoint_spacing, car.waypoint_spacing, 1.0])
        mean = lines.through(end)
        std = torch.tensor([lines.config.std], dtype=torch.float32)
    else:
        mean = torch.as_tensor(actions, dtype=torch.float32)
        std = torch.tensor(context_std, dtype=torch.float32).expand_as(mean).clone()
    return Plan(torch.as_tensor(actions, dtype=torch.float32), mean, std, torch.empty(0), 0, 0.0)


def drive_to_goal(trajectory: NWMTrajectory, now: int, goal_offset: int, context: int) -> tuple[np.ndarray, np.ndarray]:
    """The recorded frames from the first context frame to the one before the goal, and their
    distances to the goal pose (metres)."""
    seen = list(range(now - context + 1, now + goal_offset))
    goal = trajectory.poses[now + goal_offset, :2]
    return np.stack([trajectory.image(i) for i in seen]), np.linalg.norm(trajectory.poses[seen, :2] - goal, axis=1)


def random_lines(planner: NavPlanner, rng: torch.Generator, lines: int) -> np.ndarray:
    """``[lines, H, 3]`` Car actions of straight lines drawn from NWM's initial distribution."""
    mean, std = planner.lines.initial()
    drawn = (mean + std * torch.randn(lines, 1, 3, generator=rng, dtype=torch.float64)).clamp(-1, 1)
    return planner.lines.expand(drawn).numpy()


def baseline_paths(planner: NavPlanner, s: Situation, lines: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The model-free paths for one situation (see the module docstring) and the ATE of every line."""
    mean, _ = planner.lines.initial()
    candidates = [planner.path(a) for a in lines]
    ates = np.array([path_errors(s.truth, p, s.goal)["ate"] for p in candidates])
    return {
        "constant_velocity": planner.path(planner.constant_velocity(s)),
        "nwm_mean": planner.path(planner.lines.expand(mean[None].double())[0].numpy()),
        "best_line": candidates[int(np.argmin(ates))],
    }, ates


def entries(config: NavReplayConfig):
    for flag, value in (("--data", config.data), ("--index", config.index)):  # --model "" is the bundled model
        if not value:
            raise ValueError(f"{flag} is required")
    if not Path(config.data).is_dir():
        raise ValueError(f"--data {config.data}: not a folder")
    index = read_eval_index(config.index)
    if not index:
        raise ValueError(f"--index {config.index}: no entries")
    return index[: config.limit] if config.limit else index


def summary(method: str, rows: list[dict], spacing: float, seconds: list[float] | None) -> dict:
    """Mean figures of one method over its plans, translation ones also in metres."""
    record = {"method": method, "plans": len(rows)}
    for name in METRICS:
        record[f"{name}_wu" if name in TRANSLATION else name] = float(np.mean([r[name] for r in rows]))
    for name in TRANSLATION:
        record[f"{name}_m"] = record[f"{name}_wu"] * spacing
    record["seconds_per_plan"] = float(np.mean(seconds)) if seconds else None
    return record


def check_model(model) -> None:
    embodiment = getattr(model, "embodiment", None)
    if getattr(embodiment, "name", None) != "car":
        raise ValueError(f"--model: the world model was trained for a {getattr(embodiment, 'name', 'unknown')} robot, not a car")


def car_model_source(name: str) -> Path:
    """Where the car world model `--model` names is: a directory, a hub id's cached snapshot, or
    ("") the bundled sim car model; one-line errors for anything else."""
    from vjepa_wm.sim_model import BUNDLED_NAV_MODEL
    from vjepa_wm.world_model.checkpoints import resolve_checkpoint

    if not name:
        if not (BUNDLED_NAV_MODEL / "config.json").is_file():
            raise ValueError("--model is required (this install has no bundled navigation model)")
        return BUNDLED_NAV_MODEL
    source = resolve_checkpoint(name).path
    if not source.is_dir():
        raise ValueError(f"--model {name}: not a world model directory")
    return source


def load_car_model(name: str, device: str):
    """The car world model `--model` names (`car_model_source`), in eval mode on `device`."""
    from vjepa_wm.world_model.checkpoints import load_world_model

    model = load_world_model(car_model_source(name)).eval().to(device)
    check_model(model)
    return model


def load_trajectory(data: str, name: str, cache: dict) -> NWMTrajectory:
    if name not in cache:
        folder = Path(data) / name
        if not folder.is_dir():
            raise ValueError(f"--data {data}: no trajectory {name!r} (named by the index)")
        cache[name] = read_trajectory(folder)
    return cache[name]


def evaluate(model, config: NavReplayConfig, progress: bool = True) -> dict:
    """Every index entry planned by the model and by the baselines; the table rows and per-plan figures."""
    from tqdm import tqdm

    check_model(model)
    index = entries(config)
    planner = NavPlanner(model, config)
    horizon, spacing = config.cem.horizon, planner.car.waypoint_spacing
    rng = torch.Generator().manual_seed(config.seed)
    offsets = np.random.default_rng(config.seed)
    trajectories: dict[str, NWMTrajectory] = {}
    rows: dict[str, list[dict]] = {m: [] for m in METHODS}
    seconds, plans, landscape = [], [], []
    for name, now, low, high in tqdm(index, desc="nav-replay", unit="plan", disable=not progress):
        trajectory = load_trajectory(config.data, name, trajectories)
        goal_offset = int(offsets.integers(low, high + 1))
        if now - config.context + 1 < 0 or now + max(horizon, goal_offset) >= len(trajectory) or goal_offset < 1:
            raise ValueError(f"--index {config.index}: entry ({name}, {now}, {low}, {high}) needs frames "
                             f"{now - config.context + 1}..{now + max(horizon, goal_offset)}, the trajectory has 0..{len(trajectory) - 1}")
        s = situation(trajectory, now, goal_offset, config.context, horizon, spacing)
        plan, took, score = planner.plan_with_objective(s)
        lines = random_lines(planner, rng, config.random_lines)
        baselines, line_ates = baseline_paths(planner, s, lines)
        paths = {"model": planner.path(plan.actions.cpu().numpy()), **baselines}
        if config.landscape:
            ranked = landscape_figures(score, lines, line_ates, planner.actions_of(s.truth), planner.constant_velocity(s),
                                        planner.cem.device)
            frames, distances = drive_to_goal(trajectory, now, goal_offset, config.context)
            landscape.append({**ranked, "encoder_distance_spearman": encoder_ranking(model, frames, s.goal_image, distances)})
        figures = {m: path_errors(s.truth, p, s.goal) for m, p in paths.items()}
        for m in METHODS:
            rows[m].append(figures[m])
        seconds.append(took)
        plans.append({"trajectory": name, "time": now, "goal_offset": goal_offset, "seconds": took,
                      "energy": plan.energy, "figures": figures, "planned": paths["model"].tolist(), "driven": s.truth.tolist()})
    table = [summary(m, rows[m], spacing, seconds if m == "model" else None) for m in METHODS]
    report = {"mode": config.mode, "start": config.start, "samples": config.cem.samples,
              "iterations": config.cem.iterations, "horizon": horizon, "waypoint_spacing": spacing, "table": table, "plans": plans}
    if config.landscape:
        report["landscape"] = landscape_summary(landscape)
    if config.replay:
        report["replay"] = replay(planner, config, config.trajectory or index[0][0], trajectories, progress)
    return report


def replay(planner: NavPlanner, config: NavReplayConfig, name: str, cache: dict, progress: bool = True) -> dict:
    """Receding horizon along one trajectory: a plan at every step toward the frame `horizon` ahead."""
    from tqdm import tqdm

    from vjepa_wm.datasets.video_io import write_mp4

    trajectory = load_trajectory(config.data, name, cache)
    horizon, spacing = config.cem.horizon, planner.car.waypoint_spacing
    times = range(config.context - 1, len(trajectory) - horizon)
    if not times:
        raise ValueError(f"--trajectory {name}: {len(trajectory)} frames, a replay needs {config.context + horizon}")
    warm, planned, frames, figures, seconds = None, [], [], [], []
    for now in tqdm(times, desc=f"replay {name}", unit="step", disable=not progress):
        s = situation(trajectory, now, horizon, config.context, horizon, spacing)
        plan, took = planner.plan(s, warm)
        warm = plan.shifted()
        path = planner.path(plan.actions.cpu().numpy())
        planned.append(to_world(path, trajectory.poses[now], spacing))
        figures.append(path_errors(s.truth, path, s.goal))
        seconds.append(took)
        frames.append(replay_frame(s, path))
    out = Path(config.out)
    picture = plot_replay(trajectory.poses, planned, list(times), out / f"replay_{name}.png", name)
    video = write_mp4(out / f"replay_{name}.mp4", np.stack(frames), config.fps)
    record = summary("model", figures, spacing, seconds)
    return {"trajectory": name, "steps": len(figures), **record, "plot": str(picture), "video": str(video)}


def to_world(path: np.ndarray, origin: np.ndarray, spacing: float) -> np.ndarray:
    """Planned ``[H, 3]`` poses (waypoint units, frame of `origin`) -> odometry-frame x, y ``[H+1, 2]`` from the origin."""
    c, s = math.cos(origin[2]), math.sin(origin[2])
    xy = path[:, :2] * spacing
    world = origin[:2] + np.stack([c * xy[:, 0] - s * xy[:, 1], s * xy[:, 0] + c * xy[:, 1]], 1)
    return np.concatenate([origin[None, :2], world])


def plot_replay(poses: np.ndarray, planned: list[np.ndarray], times: list[int], path: Path, title: str) -> Path:
    """Top-down: the driven path and every plan made along it."""
    from vjepa_wm.planner.plots import pyplot, save_figure

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 6))
    for i, line in enumerate(planned):
        axis.plot(line[:, 0], line[:, 1], color="tab:orange", alpha=0.5, linewidth=1, label="planned" if i == 0 else None)
    axis.plot(poses[:, 0], poses[:, 1], "k-", linewidth=2, label="driven")
    axis.plot(poses[times, 0], poses[times, 1], "k.", markersize=4)
    axis.set_aspect("equal", adjustable="datalim")
    axis.set_xlabel("x (m)")
    axis.set_ylabel("y (m)")
    axis.set_title(title)
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def replay_frame(s: Situation, planned: np.ndarray) -> np.ndarray:
    """Current view | goal view | top-down overlay of the driven (white) and planned (orange) paths."""
    import cv2

    view, goal = s.context[-1], s.goal_image
    height, width = view.shape[:2]
    if goal.shape != view.shape:
        goal = cv2.resize(goal, (width, height), interpolation=cv2.INTER_AREA)
    panel = np.full((height, height, 3), 40, np.uint8)
    reach = max(np.abs(s.truth[:, :2]).max(), np.abs(planned[:, :2]).max(), 1.0) * 1.15
    # Forward (x) points up, left (y) points left; the car sits at the bottom centre.
    def pixel(p):
        return (int(height / 2 - p[1] / reach * height / 2), int(height - 4 - p[0] / reach * (height - 8)))

    for points, colour in ((s.truth, (255, 255, 255)), (planned, (255, 140, 0))):
        line = np.array([pixel((0.0, 0.0))] + [pixel(p) for p in points], np.int32)
        cv2.polylines(panel, [line], False, colour, 1, cv2.LINE_AA)
    cv2.circle(panel, pixel(s.goal), 3, (0, 200, 0), -1)
    return np.concatenate([view, goal, panel], axis=1)
