"""Evaluations the command line runs: goal-image planning in the PyBullet sim, scored by the
simulator (`sim`)."""
