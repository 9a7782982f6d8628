"""What the sim evaluation tells the planner per stage: goal images, step budgets and, in commanded
mode, the gripper command and whether the stage moves straight up or down."""
from __future__ import annotations

import numpy as np
import pytest

from vjepa_wm.evaluation.sim import SimEvalConfig, episode_goals, make_env


@pytest.fixture(scope="module")
def pick_and_place():
    config = SimEvalConfig(task="pick_and_place", image_size=64)
    env = make_env(config)
    _, info = env.reset(seed=4)
    yield env, info, config
    env.close()


def test_commanded_stages_pin_the_gripper_and_the_sideways_motion(pick_and_place):
    env, info, config = pick_and_place
    goals = episode_goals(env, info, config)
    assert len(goals) == 7 and config.max_steps == 30
    assert [goal.max_steps for goal in goals] == [11, 3, 2, 2, 7, 3, None]
    assert sum(goal.max_steps or 0 for goal in goals) < config.max_steps  # the release keeps the rest
    hover, around, closed, lifted, carried, lowered, released = (goal.pinned for goal in goals)
    step = config.franka.max_gripper
    assert hover == {6: 0.0} and carried == {6: 0.0}  # sideways moves: the position is searched freely
    assert around == {6: 0.0, 0: 0.0, 1: 0.0} and lowered == {6: 0.0, 0: 0.0, 1: 0.0}
    assert closed == {6: step, 0: 0.0, 1: 0.0} and released == {6: -step, 0: 0.0, 1: 0.0}
    assert lifted == {6: 0.0, 0: 0.0, 1: 0.0}
    assert np.array_equal(goals[-1].image, info["goal_image"])
    assert all(np.array_equal(goal.image, image) for goal, image in zip(goals, info["subgoal_images"]))


def test_search_mode_leaves_everything_to_cem(pick_and_place):
    env, info, _ = pick_and_place
    goals = episode_goals(env, info, SimEvalConfig(task="pick_and_place", image_size=64, gripper="search"))
    assert all(goal.pinned is None for goal in goals)
    assert [goal.max_steps for goal in goals] == [11, 3, 2, 2, 7, 3, None]
