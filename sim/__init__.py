"""Simulation room: the PyBullet Franka tabletop (tasks, goal images, success checks),
scripted data collection writing the DROID raw format, and the navigation world.

Not built yet (issue 6); this package only reserves the room.
"""
