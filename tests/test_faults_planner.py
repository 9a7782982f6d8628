"""Fault catalog, planner side (README "Fault catalog"): bad planning settings are refused before
anything moves, and no unsafe, non-finite or out-of-date action reaches `Robot.apply`."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from planner_fakes import FRANKA, START, FakeArm, LinearLatentWorld

from vjepa_wm.cli import main
from vjepa_wm.embodiments import Franka
from vjepa_wm.planner.cem import CEM, CEMConfig
from vjepa_wm.planner.goals import Goal, SubgoalRule
from vjepa_wm.planner.mpc import MPCConfig, run_mpc
from vjepa_wm.planner.safety import SafetyEnvelope

WORLD = LinearLatentWorld()
HERE = START[0].numpy().astype(np.float64)


def run_cli(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err.strip()


def small_cem(**settings) -> CEM:
    return CEM(CEMConfig(**{"samples": 32, "iterations": 2, "elites": 4, **settings}), FRANKA)


@pytest.fixture(scope="module")
def planning_files(tmp_path_factory):
    """A tiny random world model and two random 32 px images, for the plan command."""
    import cv2
    from test_planner_world_model import tiny_model

    from vjepa_wm.world_model.checkpoints import save_world_model

    folder = tmp_path_factory.mktemp("plan")
    save_world_model(tiny_model(), folder / "wm")
    rng = np.random.default_rng(0)
    for name in ("now", "goal"):
        cv2.imwrite(str(folder / f"{name}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return folder


def plan_argv(folder, *flags):
    return ["plan", "--model", str(folder / "wm"), "--image", str(folder / "now.png"), "--goal", str(folder / "goal.png"), *flags]


class CorruptedCEM(CEM):
    """A search whose answer is replaced by `action`: stands for any bug upstream of the envelope."""

    def __init__(self, action, **settings):
        super().__init__(CEMConfig(samples=8, iterations=1, elites=2, **settings), FRANKA)
        self.action = torch.tensor(action, dtype=torch.float32)

    def search(self, *args, **kwargs):
        plan = super().search(*args, **kwargs)
        plan.actions = self.action[None].clone()
        return plan


def goal_image(offset=(0.03, 0.0, 0.0)):
    goal = HERE.copy()
    goal[:3] += offset
    return WORLD.image_of(goal)


# ----------------------------------------------------------------------------- settings, before anything moves


@pytest.mark.parametrize("flag", ["--franka.max_step=-0.05", "--franka.max_step=10", "--franka.max_step=nan",
                                  "--franka.max_step=inf", "--franka.max_gripper=100", "--franka.max_rotation=-1"])
def test_plan_refuses_an_inverted_huge_or_non_finite_step_box(flag, capsys):
    name = flag.split("=")[0][2:]
    code, err = run_cli(["plan", "--model", "unused", "--image", "a.png", "--goal", "b.png",
                         "--state", "0.5,0,0.3,3,0,0,0", flag], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{name} must be a positive finite number at most" in err and "safety ceiling" in err


@pytest.mark.parametrize("state", ["1e30,0,0.3,3,0,0,0", "0.5,0,0.3,3,0,0,inf", "0.5,0,0.3,9,0,0,0", "0.5,0,0.3,3,0,0,7"])
def test_plan_refuses_an_impossible_state(state, capsys):
    code, err = run_cli(["plan", "--model", "unused", "--image", "a.png", "--goal", "b.png", "--state", state], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "--state" in err


@pytest.mark.parametrize("flag,message", [
    ("--cem.momentum_mean=2", "cem.momentum_mean must be in [0, 1]"),
    ("--cem.samples=0", "cem.samples must be a positive integer"),
    ("--cem.early_stop_tolerance=nan", "cem.early_stop_tolerance"),
    ("--cem.pinned={6: 100}", "pinned dgripper must be a finite number in the step bounds"),
    ("--cem.workspace=[[0.6, 0, 0], [0.3, 0.2, 0.4]]", "cem.workspace must be (low corner, high corner)"),
])
def test_plan_refuses_bad_search_settings(flag, message, capsys, planning_files):
    code, err = run_cli(plan_argv(planning_files, "--state", "0.5,0,0.3,3,0,0,0", flag), capsys)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_plan_prints_only_actions_inside_the_configured_box(planning_files, tmp_path):
    code = main(plan_argv(planning_files, "--state", "0.5,0,0.3,3,0,0,0.5", "--franka.max_step=0.01", "--cem.samples=16",
                          "--cem.iterations=2", "--cem.elites=4", "--json", str(tmp_path / "plan.json")))
    action = np.array(json.loads((tmp_path / "plan.json").read_text())["action"])
    assert code == 0 and np.all(np.abs(action[:3]) <= 0.01 + 1e-6) and abs(action[6]) <= 0.75 + 1e-6


@pytest.mark.parametrize("pinned", [{0: 5.0}, {6: 100.0}, {6: -0.76}, {9: 0.0}])
def test_a_goal_pinned_outside_the_step_bounds_is_refused_before_anything_moves(pinned):
    arm = FakeArm(WORLD, HERE)
    with pytest.raises(ValueError, match="pinned"):
        run_mpc(arm, WORLD, [Goal(goal_image(), pinned=pinned)], small_cem(), MPCConfig(max_steps=3))
    assert arm.applied == [] and arm.holds == 0


@pytest.mark.parametrize("make", [
    lambda: Goal(goal_image(), pinned={0: math.nan}),
    lambda: Goal(goal_image(), pinned={-1: 0.0}),
    lambda: Goal(goal_image(), pinned={"x": 0.0}),
    lambda: Goal(goal_image(), switch_energy=math.nan),
    lambda: Goal(goal_image(), max_steps=-1),
    lambda: SubgoalRule(switch_energy=math.inf),
    lambda: SubgoalRule(max_steps=-2),
])
def test_goal_settings_are_checked_when_made(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("settings", [
    {"max_observation_age": math.nan}, {"max_observation_age": math.inf}, {"max_observation_age": 0.0},
    {"clock_tolerance": math.nan}, {"clock_tolerance": -0.1}, {"max_steps": 0}, {"stale_retries": -1},
    {"stop_energy": math.nan},
])
def test_mpc_settings_are_checked_when_made(settings):
    name = next(iter(settings))
    with pytest.raises(ValueError, match=f"mpc.{name}"):
        MPCConfig(**settings)


@pytest.mark.parametrize("settings", [
    {"samples": 0}, {"elites": 0}, {"elites": 33}, {"momentum_mean": 1.5}, {"momentum_std": -0.1},
    {"pinned": {0: math.inf}}, {"workspace": ((0.6, 0.0, 0.0), (0.3, 0.2, 0.4))}, {"workspace": ((0.0,), (1.0,))},
    {"early_stop_patience": -1}, {"momentum_overrides": {"dgripper": [0.1]}},
])
def test_cem_settings_are_checked_when_made(settings):
    with pytest.raises(ValueError, match="cem.|workspace"):
        small_cem(**settings)


# ----------------------------------------------------------------------------- the loop, at the Robot boundary


class FutureArm(FakeArm):
    def __init__(self, ahead: float):
        super().__init__(WORLD, HERE)
        self.ahead = ahead

    def observe(self):
        obs = super().observe()
        return type(obs)(obs.image, obs.state, obs.stamp + self.ahead)


def test_an_observation_from_the_future_is_held_on_and_never_planned_from():
    arm = FutureArm(ahead=1000.0)
    result = run_mpc(arm, WORLD, [goal_image()], small_cem(), MPCConfig(max_steps=5, stale_retries=2))
    assert arm.applied == [] and arm.holds >= 3
    assert result.stop_reason.startswith("refused: observation from the future") and len(result.refusals) == 3


def test_a_stamp_within_the_clock_tolerance_is_planned_from():
    arm = FutureArm(ahead=0.01)
    result = run_mpc(arm, WORLD, [goal_image()], small_cem(), MPCConfig(max_steps=2))
    assert len(arm.applied) == 2 and result.refusals == []


class SlowPlanningArm(FakeArm):
    """Its clock runs 0.6 s on every reading: fresh when checked, 1.2 s old once the plan is made."""

    def now(self):
        self.time += 0.6
        return self.time


def test_a_plan_whose_observation_went_stale_while_planning_is_not_applied():
    arm = SlowPlanningArm(WORLD, HERE)
    result = run_mpc(arm, WORLD, [goal_image()], small_cem(), MPCConfig(max_steps=3, stale_retries=1))
    assert arm.applied == [] and arm.holds >= 2
    assert result.stop_reason.startswith("refused: plan out of date: stale observation")


@pytest.mark.parametrize("action,reason", [
    ([0.2, 0, 0, 0, 0, 0, 0], "unsafe action: dx +0.2 outside the per-step bounds [-0.05, +0.05]"),
    ([0, 0, 0, 0, 0, 0, -0.9], "unsafe action: dgripper -0.9 outside the per-step bounds [-0.75, +0.75]"),
    ([0, math.nan, 0, 0, 0, 0, 0], "non-finite action"),
])
def test_an_action_outside_the_step_bounds_never_reaches_apply(action, reason):
    arm = FakeArm(WORLD, HERE)
    result = run_mpc(arm, WORLD, [goal_image()], CorruptedCEM(action), MPCConfig(max_steps=3))
    assert arm.applied == [] and arm.holds >= 2 and result.stop_reason == f"refused: {reason}"


def test_an_action_leaving_the_workspace_never_reaches_apply():
    box = ((0.4, -0.2, 0.1), (0.52, 0.2, 0.5))  # x = 0.5 now: a 3 cm step in x would leave it
    arm = FakeArm(WORLD, HERE)
    result = run_mpc(arm, WORLD, [goal_image()], CorruptedCEM([0.03, 0, 0, 0, 0, 0, 0], workspace=box), MPCConfig(max_steps=3))
    assert arm.applied == [] and result.stop_reason == "refused: unsafe action: x would reach 0.5300, outside the workspace [0.4, 0.52]"


def test_from_outside_the_workspace_an_action_may_only_come_closer():
    envelope = SafetyEnvelope(FRANKA, ((0.0, 0.0, 0.0), (0.4, 0.4, 0.4)))
    outside = np.array([0.5, 0.2, 0.2, 3.0, 0, 0, 0])  # 10 cm beyond x = 0.4
    assert envelope.action_problem([-0.05, 0, 0, 0, 0, 0, 0], outside) is None
    assert envelope.action_problem([0.01, 0, 0, 0, 0, 0, 0], outside).reason.startswith("unsafe action: x would reach 0.5100")
    assert envelope.action_problem([0, 0, 0, 0, 0, 0, 0], outside) is None  # holding still is never unsafe
    assert envelope.action_problem(np.zeros(6), outside).reason.startswith("malformed action")


def test_a_broken_world_model_holds_the_robot_and_says_why():
    arm = FakeArm(WORLD, HERE)
    broken = LinearLatentWorld(nan_energy=True)
    result = run_mpc(arm, broken, [goal_image()], small_cem(), MPCConfig(max_steps=3))
    assert arm.applied == [] and arm.holds >= 2 and result.stop_reason.startswith("refused: CEM got no finite energy")


@pytest.mark.parametrize("broken", ["image", "state"])
def test_a_malformed_image_or_an_impossible_state_is_never_planned_from(broken):
    class BrokenArm(FakeArm):
        def observe(self):
            obs = super().observe()
            if broken == "image":
                return type(obs)(obs.image.astype(np.float32), obs.state, obs.stamp)
            return type(obs)(obs.image, np.array([1e30, 0, 0.3, 3, 0, 0, 0]), obs.stamp)

    arm = BrokenArm(WORLD, HERE)
    result = run_mpc(arm, WORLD, [goal_image()], small_cem(), MPCConfig(max_steps=3))
    assert arm.applied == [] and result.stop_reason.startswith("refused: " + ("malformed image" if broken == "image" else "implausible state"))


def test_no_applied_action_ever_leaves_the_bounds_or_the_workspace_whatever_the_settings():
    """Random valid settings (step boxes up to the ceilings, horizons, momenta, pins, workspaces, starts
    inside and outside them): every action the loop applies keeps the envelope's rules."""
    rng = np.random.default_rng(1)
    for trial in range(24):
        franka = Franka(max_step=float(rng.uniform(0.005, 0.1)), max_gripper=float(rng.uniform(0.05, 1.0)),
                        max_rotation=float(rng.uniform(0.01, 0.5)), search_rotation=bool(rng.integers(2)))
        start = HERE.copy()
        start[:3] += rng.uniform(-0.1, 0.1, 3)
        workspace = None
        if rng.integers(2):
            low = HERE[:3] - rng.uniform(0.0, 0.08, 3)
            workspace = (tuple(low), tuple(low + rng.uniform(0.02, 0.15, 3)))
        pinned = {6: float(rng.uniform(-1, 1) * franka.max_gripper)} if rng.integers(2) else None
        cem = CEM(CEMConfig(samples=int(rng.integers(4, 40)), iterations=int(rng.integers(1, 4)), elites=2,
                            horizon=int(rng.integers(1, 4)), momentum_mean=float(rng.uniform()), momentum_std=float(rng.uniform()),
                            workspace=workspace, seed=trial), franka)
        goal = start.copy()
        goal[:3] += rng.uniform(-0.3, 0.3, 3)  # often far outside the box and many steps away
        arm = FakeArm(WORLD, start)
        result = run_mpc(arm, WORLD, [Goal(WORLD.image_of(np.clip(goal, -1.9, 1.9)), pinned=pinned)], cem, MPCConfig(max_steps=4))
        assert len(arm.applied) == 4
        for record, action in zip(result.records, arm.applied):
            assert np.all(action >= np.array(franka.action_low) - 1e-6) and np.all(action <= np.array(franka.action_high) + 1e-6)
            if not franka.search_rotation:
                assert np.all(action[3:6] == 0)
            if workspace is not None:
                before, after = np.array(record.state[:3]), np.array(record.state[:3]) + action[:3]
                assert np.all(after >= np.minimum(workspace[0], before) - 1e-6) and np.all(after <= np.maximum(workspace[1], before) + 1e-6)
