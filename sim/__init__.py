"""Simulation room: the PyBullet Franka tabletop (tasks, goal images, success checks) and scripted
data collection writing the DROID raw format.

Importing the package registers the gymnasium ids ``vjepa_wm/Franka{Reach,Grasp,ReachWithObject,
PickAndPlace}-v0`` (pass ``target_object="box"`` to `gymnasium.make` for the box variants); the
env module itself (PyBullet, torch through `planner.poses`) loads only when an env is made.
"""
from __future__ import annotations

import gymnasium

MAX_EPISODE_STEPS = 50
_IDS = {
    "reach": "FrankaReach",
    "grasp": "FrankaGrasp",
    "reach_with_object": "FrankaReachWithObject",
    "pick_and_place": "FrankaPickAndPlace",
}

for _task, _name in _IDS.items():
    if f"vjepa_wm/{_name}-v0" not in gymnasium.registry:
        gymnasium.register(
            id=f"vjepa_wm/{_name}-v0",
            entry_point="sim.franka_env:FrankaEnv",
            max_episode_steps=MAX_EPISODE_STEPS,
            kwargs={"task": _task, "max_episode_steps": MAX_EPISODE_STEPS},
        )
