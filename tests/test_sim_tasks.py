"""Tasks: seeded sampling, goal images, and success judged from simulator state only."""
from __future__ import annotations

import numpy as np
import pytest

from vjepa_wm.sim.franka.config import SimConfig
from vjepa_wm.sim.franka.env import FrankaEnv
from vjepa_wm.sim.franka.objects import OBJECTS
from vjepa_wm.sim.franka.scripted import Explorer, Waypoint
from vjepa_wm.sim.franka.tasks import TASKS, grasp_stages, gripper_commands, make_task, vertical_moves

SMALL = SimConfig(image_size=64, low_poly=True)


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b).mean())


@pytest.mark.parametrize("task", sorted(TASKS))
def test_goal_images_differ_from_start_and_depend_on_goal(task):
    env = FrankaEnv(SMALL, task=task)
    try:
        obs, info = env.reset(seed=0)
        goals = env.goal_images
        assert len(goals) == {"grasp": 4, "pick_and_place": 7}.get(task, 1)
        assert all(g.dtype == np.uint8 and g.shape == (64, 64, 3) for g in goals)
        assert all(_difference(goal, obs["pixels"]) > 0.5 for goal in goals)
        # Stages at the same pose differ only in the fingers (hidden by the object from this camera).
        poses = [g.ee_position for g in env.episode.goals]
        assert all(_difference(goals[i], goals[j]) > 0.5 for i in range(len(goals)) for j in range(i + 1, len(goals))
                   if poses[i] != poses[j])
        assert np.array_equal(info["goal_image"], goals[-1])
        # Rendering a goal teleports and restores: the running episode is untouched.
        state = env.state()
        assert np.array_equal(env.render_configuration(env.episode.goals[-1]), goals[-1])
        assert np.array_equal(env.state(), state) and np.array_equal(env.observe().image, obs["pixels"])
        again = env.reset(seed=0)[1]["goal_image"]
        other = env.reset(seed=1)[1]["goal_image"]
        assert np.array_equal(again, goals[-1]) and _difference(other, goals[-1]) > 0.5
    finally:
        env.close()


def _grasp(explorer: Explorer, name: str) -> float:
    env = explorer.env
    position, yaw = env.scene.object_position(name), explorer._grasp_yaw(name)
    point = np.array([position[0], position[1], OBJECTS[name].rest_height])
    for waypoint in (Waypoint(point + [0, 0, 0.1], yaw, 0.0), Waypoint(point, yaw, 0.0, tolerance=0.004),
                     Waypoint(point, yaw, 1.0, max_actions=2), Waypoint(point + [0, 0, 0.1], yaw, 1.0)):
        explorer.go(waypoint)
    return yaw


def _scripted(task: str, target_object: str, seed: int = 11):
    env = FrankaEnv(SMALL, task=task, target_object=target_object)
    _, info = env.reset(seed=seed)
    return env, Explorer(env, np.random.default_rng(0), 60), info["is_success"]


@pytest.mark.parametrize("task,target_object", [("reach", "cup"), ("grasp", "cup"), ("grasp", "box"),
                                                ("reach_with_object", "box"), ("pick_and_place", "cup")])
def test_scripted_solution_succeeds_and_success_stays_in_info(task, target_object):
    env, explorer, at_start = _scripted(task, target_object)
    try:
        assert at_start is False
        episode = env.episode
        if task == "reach":
            explorer.go(Waypoint(np.asarray(episode.target_position), 0.0, 0.0))
        elif task == "reach_with_object":
            explorer.go(Waypoint(np.asarray(episode.target_position), 0.0, 1.0))
        else:
            yaw = _grasp(explorer, target_object)
            if task == "pick_and_place":
                spot = np.asarray(episode.target_position)
                for waypoint in (Waypoint(spot + [0, 0, 0.1], yaw, 1.0), Waypoint(spot + [0, 0, 0.005], yaw, 1.0),
                                 Waypoint(spot + [0, 0, 0.005], yaw, 0.0, max_actions=2)):
                    explorer.go(waypoint)
        _, reward, terminated, _, info = env.step(np.zeros(7))
        assert info["is_success"] is True
        assert reward == 0.0 and terminated is False  # success never leaves `info`
    finally:
        env.close()


def test_dropping_the_object_fails_reach_with_object():
    env, explorer, _ = _scripted("reach_with_object", "cup")
    try:
        explorer.go(Waypoint(env.state()[:3], 0.0, 0.0, max_actions=2))  # open: the cup falls
        explorer.go(Waypoint(np.asarray(env.episode.target_position), 0.0, 0.0))
        ee = env.state()[:3]
        assert np.linalg.norm(ee - env.episode.target_position) < 0.04
        assert env.step(np.zeros(7))[4]["is_success"] is False
    finally:
        env.close()


def test_grasp_fails_while_the_object_stays_on_the_table():
    env, explorer, _ = _scripted("grasp", "box")
    try:
        name = "box"
        position = env.scene.object_position(name)
        explorer.go(Waypoint(np.array([position[0], position[1], 0.2]), 0.0, 1.0))  # hover closed above it
        assert env.step(np.zeros(7))[4]["is_success"] is False
    finally:
        env.close()


def test_sampling_is_seeded_and_respects_the_task_geometry():
    for name in TASKS:
        task = make_task(name, "box")
        first, second = task.sample(np.random.default_rng(5)), task.sample(np.random.default_rng(5))
        assert first == second
        assert first != task.sample(np.random.default_rng(6))
        objects = first.start.objects
        assert np.hypot(objects["cup"][0] - objects["box"][0], objects["cup"][1] - objects["box"][1]) >= 0.14
    pick = make_task("pick_and_place", "cup").sample(np.random.default_rng(3))
    assert [g.held for g in pick.goals] == [None, None, "cup", "cup", "cup", "cup", None]
    assert gripper_commands(pick) == ("keep", "keep", "close", "keep", "keep", "keep", "open")
    assert pick.target_position[2] == OBJECTS["cup"].rest_height
    hover, around, closed, lifted = pick.goals[:4]
    assert around.ee_position == closed.ee_position and hover.ee_position[2] > around.ee_position[2] + 0.05
    assert lifted.ee_position[2] - closed.ee_position[2] >= 0.05  # lifted at least as far as success needs
    assert np.allclose(pick.goals[-1].ee_position[:2], pick.target_position[:2])  # released on the spot
    # Only the hover and the carry over the spot move sideways; every other stage goes straight up or down.
    assert vertical_moves(pick) == (False, True, True, True, False, True, True)
    grasp = make_task("grasp", "box").sample(np.random.default_rng(3))
    assert grasp.goals == grasp_stages("box", grasp.start.objects)
    assert len(make_task("grasp").stage_steps) == len(grasp.goals)
    assert len(make_task("pick_and_place").stage_steps) == len(pick.goals)
    assert gripper_commands(make_task("reach_with_object").sample(np.random.default_rng(3))) == ("keep",)
    assert vertical_moves(grasp) == (False, True, True, True)
    assert vertical_moves(make_task("reach").sample(np.random.default_rng(3))) == (False,)
    with pytest.raises(ValueError, match="unknown object"):
        make_task("grasp", "banana")
