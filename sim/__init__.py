"""Simulation room: `franka/`, the PyBullet Franka tabletop (tasks, goal images, success checks,
scripted collection written as DROID raw)."""
