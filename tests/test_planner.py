"""CEM and MPC against fake world models with known minima (the arm itself is the only fake here)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from planner_fakes import FRANKA, START, TOKENS, WIDTH, FakeArm, LinearLatentWorld

from vjepa_wm.embodiments import Car, Observation
from vjepa_wm.planner.cem import CEM, CEMConfig
from vjepa_wm.planner.energy import rollout_energy
from vjepa_wm.planner.goals import SubgoalRule
from vjepa_wm.planner.mpc import Goal, MPCConfig, run_mpc
from vjepa_wm.world_model.world_model import Rollout


def search(world, goal_state, config, warm=None):
    cem = CEM(config, FRANKA)
    z_goal = world.latent(goal_state)
    return cem, cem.search(rollout_energy(world, None, START, z_goal), warm)


def test_cem_finds_the_known_minimum():
    world = LinearLatentWorld()
    goal = START.clone()
    goal[0, :3] += torch.tensor([0.03, -0.02, 0.01])
    _, plan = search(world, goal, CEMConfig(samples=400, iterations=12, elites=20))
    assert torch.allclose(plan.first_action[:3], torch.tensor([0.03, -0.02, 0.01]), atol=3e-3)
    assert torch.all(plan.first_action[3:6] == 0)
    # The gripper is already open (0) and states clip to [0, 1]: any non-positive command is optimal.
    assert plan.first_action[6] <= 0
    assert plan.elite_energies[-1] < plan.elite_energies[0]


def test_minimum_outside_the_box_stops_at_the_bound_and_samples_never_leave_it():
    world = LinearLatentWorld()
    goal = START.clone()
    goal[0, 0] += 0.5  # far beyond one step
    config = CEMConfig(samples=200, iterations=8, elites=10, horizon=2)
    cem = CEM(config, FRANKA)
    seen = []
    base = rollout_energy(world, None, START, world.latent(goal))

    def score(actions):
        seen.append(actions.clone())
        return base(actions)

    plan = cem.search(score)
    samples = torch.cat(seen)
    assert samples[..., :3].abs().max() <= 0.05 + 1e-7 and samples[..., 6].abs().max() <= 0.75 + 1e-7
    assert torch.all(samples[..., 3:6] == 0)
    assert plan.actions[:, :3].abs().max() <= 0.05 + 1e-7
    assert plan.actions[0, 0] > 0.045  # pushed against the bound toward the goal


def test_same_seed_same_plan_and_different_seed_differs():
    world = LinearLatentWorld()
    goal = START.clone()
    goal[0, 1] += 0.02
    config = CEMConfig(samples=64, iterations=3, elites=8, seed=3)
    _, a = search(world, goal, config)
    _, b = search(world, goal, config)
    _, c = search(world, goal, CEMConfig(samples=64, iterations=3, elites=8, seed=4))
    assert torch.equal(a.actions, b.actions)
    assert not torch.equal(a.mean, c.mean)


def test_pinned_dimensions_are_exact_in_every_sample_and_in_the_plan():
    world = LinearLatentWorld()
    goal = START.clone()
    goal[0, :3] += torch.tensor([0.02, -0.01, 0.01])
    goal[0, 6] = 0.5  # the world would reward closing the gripper, but the gripper is pinned
    seen = []
    base = rollout_energy(world, None, START, world.latent(goal))

    def score(actions):
        seen.append(actions.clone())
        return base(actions)

    cem = CEM(CEMConfig(samples=64, iterations=4, elites=8, horizon=2, pinned={6: 0.0, 2: 0.01}), FRANKA)
    plan = cem.search(score)
    samples = torch.cat(seen)
    assert torch.all(samples[..., 6] == 0.0) and torch.all(samples[..., 2] == 0.01)
    assert torch.all(plan.actions[:, 6] == 0.0) and torch.all(plan.actions[:, 2] == 0.01)
    assert torch.all(samples[..., 3:6] == 0.0)  # rotations stay held
    assert samples[..., 0].std() > 0.005  # the free dimensions are still searched
    with pytest.raises(ValueError, match="pinned"):
        CEM(CEMConfig(pinned={7: 0.0}), FRANKA)


def test_workspace_keeps_every_candidate_inside_and_leads_back_from_outside():
    world = LinearLatentWorld()
    goal = START.clone()
    goal[0, 0] += 0.5  # the goal lies far outside the box along +x
    box = ((0.4, -0.1, 0.2), (0.53, 0.1, 0.4))
    seen = []
    base = rollout_energy(world, None, START, world.latent(goal))

    def score(actions):
        seen.append(actions.clone())
        return base(actions)

    cem = CEM(CEMConfig(samples=128, iterations=5, elites=8, horizon=3, workspace=box), FRANKA)
    plan = cem.search(score, position=START[0, :3])
    samples = torch.cat(seen)
    reached = START[0, :3] + samples[..., :3].cumsum(1)  # positions after each planned step
    low, high = torch.tensor(box[0]), torch.tensor(box[1])
    assert torch.all(reached >= low - 1e-6) and torch.all(reached <= high + 1e-6)
    assert torch.all(START[0, :3] + plan.actions[:, :3].cumsum(0) <= high + 1e-6)
    assert plan.actions[0, 0] > 0.025  # as far toward the goal as the box allows (0.03)

    # From outside the box, every candidate step moves back toward it, by at most max_step.
    outside = torch.tensor([0.7, 0.0, 0.3])
    steps = cem.confine(torch.zeros(16, 2, 7), outside)
    assert torch.allclose(steps[:, 0, :3], torch.tensor([-0.05, 0.0, 0.0]).expand(16, 3))
    assert torch.allclose(steps[:, 1, :3], torch.tensor([-0.05, 0.0, 0.0]).expand(16, 3))
    with pytest.raises(ValueError, match="workspace"):
        CEMConfig(workspace=((0.5, 0, 0), (0.4, 1, 1)))


def test_warm_start_needs_fewer_iterations_for_the_same_energy():
    world = LinearLatentWorld()
    goal = START.clone()
    goal[0, :3] += torch.tensor([0.02, 0.02, -0.01])
    config = CEMConfig(samples=128, iterations=10, elites=10, horizon=2)
    _, cold = search(world, goal, config)
    target = float(cold.elite_energies[-1]) * 1.5
    cold_iters = int(torch.nonzero(cold.elite_energies <= target)[0]) + 1
    _, warm = search(world, goal, CEMConfig(samples=128, iterations=10, elites=10, horizon=2, seed=1), warm=cold)
    warm_iters = int(torch.nonzero(warm.elite_energies <= target)[0]) + 1
    assert warm_iters < cold_iters


def test_early_stop_ends_the_search_when_the_elite_energy_plateaus():
    world = LinearLatentWorld()
    goal = START.clone()
    config = CEMConfig(samples=128, iterations=40, elites=10, early_stop_patience=2, early_stop_tolerance=0.05)
    _, plan = search(world, goal, config)
    assert plan.iterations_run < 40


def test_nan_energies_never_become_actions():
    world = LinearLatentWorld(nan_energy=True)
    with pytest.raises(FloatingPointError):
        search(world, START, CEMConfig(samples=32, iterations=2, elites=4))


def test_some_nan_candidates_are_never_elites():
    world = LinearLatentWorld()
    goal = START.clone()
    goal[0, 0] += 0.03
    base = rollout_energy(world, None, START, world.latent(goal))

    def score(actions):
        energies = base(actions)
        return torch.where(actions[:, 0, 0] > 0.02, torch.full_like(energies, float("nan")), energies)

    plan = CEM(CEMConfig(samples=256, iterations=6, elites=10), FRANKA).search(score)
    assert plan.first_action[0] <= 0.021  # the NaN-scored region (where the true optimum lies) is avoided


def test_mpc_drives_a_linear_latent_world_to_its_goal():
    world = LinearLatentWorld()
    start = START[0].numpy().astype(np.float64)
    goal = start.copy()
    goal[:3] += [0.12, -0.08, 0.05]
    arm = FakeArm(world, start)
    cem = CEM(CEMConfig(samples=128, iterations=6, elites=10, horizon=1), FRANKA)
    result = run_mpc(arm, world, [world.image_of(goal)], cem, MPCConfig(max_steps=12, stop_energy=0.05))
    assert np.linalg.norm(arm.state[:3] - goal[:3]) < 0.01
    assert result.stop_reason == "goal energy reached"
    assert all(abs(a[:3]).max() <= 0.05 + 1e-6 for a in arm.applied)
    assert result.records[-1].observed_energy < result.records[0].observed_energy
    assert arm.holds >= 1  # always told to hold at the end


def test_mpc_switches_subgoals_in_order():
    world = LinearLatentWorld()
    start = START[0].numpy().astype(np.float64)
    first, second = start.copy(), start.copy()
    first[0] += 0.06
    second[1] += 0.06
    arm = FakeArm(world, start)
    cem = CEM(CEMConfig(samples=128, iterations=6, elites=10), FRANKA)
    config = MPCConfig(max_steps=15, stop_energy=0.05, subgoals=SubgoalRule(switch_energy=0.05))
    result = run_mpc(arm, world, [world.image_of(first), world.image_of(second)], cem, config)
    assert [r.goal_index for r in result.records][0] == 0 and result.records[-1].goal_index == 1
    assert np.linalg.norm(arm.state[:3] - second[:3]) < 0.01


def test_each_goal_keeps_its_own_step_budget_and_pinned_dimensions():
    world = LinearLatentWorld()
    start = START[0].numpy().astype(np.float64)
    first, second = start.copy(), start.copy()
    first[0] += 0.06
    second[0] += 0.06
    second[6] = 0.5  # the second goal has the gripper half closed
    arm = FakeArm(world, start)
    cem = CEM(CEMConfig(samples=128, iterations=6, elites=10), FRANKA)
    goals = [Goal(world.image_of(first), pinned={6: 0.0}, max_steps=3), Goal(world.image_of(second), pinned={6: 0.25})]
    result = run_mpc(arm, world, goals, cem, MPCConfig(max_steps=6))
    assert [r.goal_index for r in result.records] == [0, 0, 0, 1, 1, 1]
    assert [a[6] for a in arm.applied] == [0.0, 0.0, 0.0, 0.25, 0.25, 0.25]
    assert abs(arm.state[6] - 0.75) < 1e-9 and abs(arm.state[0] - second[0]) < 0.01


def test_a_goal_with_its_own_switch_energy_is_left_as_soon_as_it_is_reached():
    world = LinearLatentWorld()
    start = START[0].numpy().astype(np.float64)
    first, second = start.copy(), start.copy()
    first[0] += 0.03  # one step away
    second[1] += 0.06
    cem = CEM(CEMConfig(samples=128, iterations=6, elites=10), FRANKA)
    goals = [Goal(world.image_of(first), max_steps=5, switch_energy=0.05), Goal(world.image_of(second))]
    result = run_mpc(FakeArm(world, start), world, goals, cem, MPCConfig(max_steps=6))
    indices = [r.goal_index for r in result.records]
    assert indices[0] == 0 and 1 <= indices.count(0) < 5  # left before its budget of 5 ran out
    assert result.records[indices.index(1)].switched_goal
    # Without its own threshold the same goal keeps the loop for its whole budget.
    goals[0] = Goal(world.image_of(first), max_steps=5)
    result = run_mpc(FakeArm(world, start), world, goals, CEM(CEMConfig(samples=128, iterations=6, elites=10), FRANKA),
                     MPCConfig(max_steps=6))
    assert [r.goal_index for r in result.records] == [0, 0, 0, 0, 0, 1]


def test_stale_observations_are_refused():
    world = LinearLatentWorld()
    arm = FakeArm(world, START[0].numpy(), stale_after=2)
    cem = CEM(CEMConfig(samples=32, iterations=2, elites=4), FRANKA)
    result = run_mpc(arm, world, [world.image_of(START[0].numpy())], cem, MPCConfig(max_steps=10, stale_retries=2))
    assert len(arm.applied) == 2  # nothing applied once observations went stale
    assert result.stop_reason.startswith("refused: stale observation")
    assert arm.holds >= 3


def test_nan_state_is_refused_before_planning():
    world = LinearLatentWorld()
    arm = FakeArm(world, START[0].numpy())
    arm.state[2] = np.nan
    result = run_mpc(arm, world, [world.image_of(START[0].numpy())], CEM(CEMConfig(samples=8, iterations=1, elites=2), FRANKA))
    assert arm.applied == [] and "non-finite" in result.stop_reason


class CarWorld:
    """A car version of `LinearLatentWorld`: latents are linear in (x, y) and, weakly, (cos yaw, sin yaw)."""

    def __init__(self, car: Car, seed=0):
        self.car = car
        self.weights = torch.randn(4, TOKENS * WIDTH, generator=torch.Generator().manual_seed(seed))

    def latent(self, poses: torch.Tensor) -> torch.Tensor:
        features = torch.stack([poses[..., 0], poses[..., 1], 0.2 * poses[..., 2].cos(), 0.2 * poses[..., 2].sin()], -1)
        return (features @ self.weights).view(*poses.shape[:-1], TOKENS, WIDTH)

    def rollout(self, z, state, actions, cache=None):
        states = self.car.rollout(state.expand(actions.shape[0], -1), actions)
        return Rollout(self.latent(states[:, 1:]), states)

    def encode_images(self, image):  # images carry the pose as float32 bytes
        return self.latent(torch.from_numpy(np.frombuffer(np.asarray(image).tobytes(), np.float32).copy())[None])

    @staticmethod
    def image_of(pose) -> np.ndarray:
        return np.frombuffer(np.asarray(pose, np.float32).tobytes(), np.uint8).reshape(1, 4, 3).copy()


class FakeCar:
    """Drives exactly as commanded (the car embodiment's integrate), stamped with its own clock."""

    def __init__(self, car: Car, pose):
        self.car, self.pose, self.time, self.applied = car, np.asarray(pose, np.float64), 0.0, []

    def now(self):
        return self.time

    def observe(self):
        return Observation(CarWorld.image_of(self.pose), self.pose.copy(), self.time)

    def apply(self, action):
        self.applied.append(np.asarray(action))
        self.pose = self.car.integrate(self.pose, np.asarray(action, np.float64))
        self.time += 0.25

    def hold(self):
        pass


def test_the_same_search_and_loop_plan_a_car():
    car = Car(waypoint_spacing=0.72)
    world = CarWorld(car)
    start = torch.tensor([[1.0, -2.0, 0.4]])
    target_action = torch.tensor([2.0, 0.5, 0.3])
    goal = car.integrate(start, target_action[None])
    plan = CEM(CEMConfig(samples=400, iterations=12, elites=20), car).search(rollout_energy(world, None, start, world.latent(goal)))
    assert plan.actions.shape == (1, 3)
    assert torch.allclose(plan.first_action, target_action, atol=0.05)
    # Three steps away: the MPC loop drives the car there, every command inside the car's step box
    # (cold starts: a horizon-1 warm start would carry a full-throttle step past the goal here).
    far = car.rollout(start[0], torch.tensor([[3.0, 0.0, 0.2]] * 3))[-1]
    fake = FakeCar(car, start[0].numpy())
    result = run_mpc(fake, world, [CarWorld.image_of(far)], CEM(CEMConfig(samples=256, iterations=8, elites=16), car),
                     MPCConfig(max_steps=6, warm_start=False))
    assert np.linalg.norm(fake.pose[:2] - far[:2].numpy()) < 0.05 and result.records[-1].observed_energy < 0.05
    assert all(np.all(a >= np.array(car.action_low) - 1e-6) and np.all(a <= np.array(car.action_high) + 1e-6) for a in fake.applied)
    with pytest.raises(ValueError, match="no action that adds directly to a position"):
        CEM(CEMConfig(workspace=((0, 0), (1, 1))), car)
