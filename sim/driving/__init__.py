"""The PyBullet off-road car: a procedural world (`terrain`, built by `scene`), the racecar scaled
to an ATV (`vehicle`), its forward camera (`camera`), the pure-pursuit controller (`controller`),
the env that is both a `gymnasium.Env` and a `Robot` speaking `embodiments.Car` (`env`), scripted
driving (`scripted`) and its recording as TartanDrive bags (`collect`; `vjepa-wm collect-drive`).

Importing the package registers the gymnasium id ``vjepa_wm/OffroadCar-v0``; the env module
itself (PyBullet, torch) loads only when an env is made.
"""
from __future__ import annotations

import gymnasium

MAX_EPISODE_STEPS = 200  # 50 s at 4 Hz


def make_driving_env(**kwargs):
    """gymnasium's entry point for the registered id (imports PyBullet only when an env is made)."""
    from vjepa_wm.sim.driving.env import DrivingEnv

    return DrivingEnv(**kwargs)


if "vjepa_wm/OffroadCar-v0" not in gymnasium.registry:
    gymnasium.register(id="vjepa_wm/OffroadCar-v0", entry_point=make_driving_env, max_episode_steps=MAX_EPISODE_STEPS,
                       kwargs={"max_episode_steps": MAX_EPISODE_STEPS})
