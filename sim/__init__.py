"""Simulation room: `franka/`, the PyBullet Franka tabletop (tasks, goal images, success checks,
scripted collection written as DROID raw); `driving/`, the PyBullet off-road car (terrain, pure
pursuit, scripted drives recorded as TartanDrive bags); `episode_pool`, the seeded episodes both
collectors run inline or in worker processes."""
