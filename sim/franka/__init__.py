"""The PyBullet Franka tabletop: tasks with goal images and success checks (`tasks`), the env that
is both a `gymnasium.Env` and a `Robot` (`env`), scripted collection written as DROID raw (`collect`).

Importing the package registers the gymnasium ids ``vjepa_wm/Franka{Reach,Grasp,ReachWithObject,
PickAndPlace}-v0`` (pass ``target_object="box"`` to `gymnasium.make` for the box variants); the
env module itself (PyBullet, torch) loads only when an env is made.
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


def make_franka_env(**kwargs):
    """gymnasium's entry point for the registered ids (imports PyBullet only when an env is made)."""
    from vjepa_wm.sim.franka.env import FrankaEnv

    return FrankaEnv(**kwargs)


for _task, _name in _IDS.items():
    if f"vjepa_wm/{_name}-v0" not in gymnasium.registry:
        gymnasium.register(
            id=f"vjepa_wm/{_name}-v0",
            entry_point=make_franka_env,
            max_episode_steps=MAX_EPISODE_STEPS,
            kwargs={"task": _task, "max_episode_steps": MAX_EPISODE_STEPS},
        )
