"""The world of one episode drawn from an RNG as plain numbers: heights, textures, obstacles, start.

Nothing here touches PyBullet. The layout is a pure function of the generator it is drawn from,
so two runs, or two worker processes, build bit-identical worlds; the scripted driver steers
around obstacles it knows from here; and `scene` only turns these numbers into bodies.

The ground is a heightfield of `grid` x `grid` samples (``heights[j, i]`` at
``x = (i - (grid - 1) / 2) * cell``, ``y = (j - (grid - 1) / 2) * cell``, PyBullet's layout for a
row-major array), three octaves of smooth noise rising towards the edges so the horizon shows
hills. One texture covers the whole terrain: dry grass, dirt and dark mud mixed by low-frequency
noise, speckled at texel scale. A sky panorama (zenith blue, hazy horizon, a distant ridge,
clouds) surrounds it. Obstacles are low-poly: boulders (perturbed icosahedra, solid), trees
(solid trunk, canopy blob) and patches of tall grass (thin leaning blades, no collision: the
car drives through them, as the ATV does).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import TerrainConfig

SKY_SIZE = (256, 1024)  # px (height, width) of the panorama texture, wrapped once around the world
GRASS = np.array([118.0, 124.0, 62.0])  # dry grass, RGB
DIRT = np.array([124.0, 98.0, 70.0])
MUD = np.array([70.0, 58.0, 46.0])


@dataclass(frozen=True)
class Rock:
    position: tuple[float, float, float]  # centre, m (partly buried)
    euler: tuple[float, float, float]  # orientation, rad (roll, pitch, yaw)
    vertices: np.ndarray  # float64 [12, 3], m, around the centre
    rgba: tuple[float, float, float, float]

    @property
    def radius(self) -> float:
        return float(np.linalg.norm(self.vertices[:, :2], axis=1).max())


@dataclass(frozen=True)
class Tree:
    position: tuple[float, float, float]  # foot of the trunk, m
    trunk_radius: float  # m
    trunk_height: float  # m
    canopy: np.ndarray  # float64 [12, 3], m, around the canopy's centre
    canopy_height: float  # m, the canopy's centre above the foot of the trunk
    rgba: tuple[float, float, float, float]  # canopy colour


@dataclass(frozen=True)
class GrassPatch:
    vertices: np.ndarray  # float64 [V, 3], world frame, m
    indices: np.ndarray  # int [F * 3], triangles
    rgba: tuple[float, float, float, float]


@dataclass(frozen=True)
class Layout:
    heights: np.ndarray  # float64 [grid, grid], m, indexed [y, x], (min + max) / 2 = 0
    cell: float  # m between samples
    ground_texture: np.ndarray  # uint8 [T, T, 3] RGB
    sky_texture: np.ndarray  # uint8 [H, W, 3] RGB, row 0 the zenith
    rocks: tuple[Rock, ...]
    trees: tuple[Tree, ...]
    grass: tuple[GrassPatch, ...]
    start: tuple[float, float, float]  # x, y (m), heading (rad)

    @property
    def half_size(self) -> float:
        return self.cell * (len(self.heights) - 1) / 2

    def ground_height(self, x: float, y: float) -> float:
        return ground_height(self.heights, self.cell, x, y)

    def solid_obstacles(self) -> np.ndarray:
        """float64 [K, 3]: x, y and footprint radius (m) of everything the car cannot drive through."""
        rows = [(r.position[0], r.position[1], r.radius) for r in self.rocks]
        rows += [(t.position[0], t.position[1], t.trunk_radius) for t in self.trees]
        return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def ground_height(heights: np.ndarray, cell: float, x: float, y: float) -> float:
    """Terrain height at (x, y), bilinear between samples (PyBullet's two triangles per cell
    differ from it by centimetres at most on this smooth ground)."""
    n = len(heights)
    u = float(np.clip(x / cell + (n - 1) / 2, 0, n - 1 - 1e-9))
    v = float(np.clip(y / cell + (n - 1) / 2, 0, n - 1 - 1e-9))
    i, j = int(u), int(v)
    fu, fv = u - i, v - j
    h = heights
    return float((h[j, i] * (1 - fu) + h[j, i + 1] * fu) * (1 - fv) + (h[j + 1, i] * (1 - fu) + h[j + 1, i + 1] * fu) * fv)


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """float64 [size, size] value noise: normal values on a (cells + 1)^2 lattice, smoothstep-interpolated."""
    lattice = rng.normal(size=(cells + 1, cells + 1))
    t = np.linspace(0.0, cells, size)
    index = np.minimum(t.astype(int), cells - 1)
    f = t - index
    f = f * f * (3 - 2 * f)
    a, b = lattice[index][:, index], lattice[index][:, index + 1]
    c, d = lattice[index + 1][:, index], lattice[index + 1][:, index + 1]
    fx, fy = f[None, :], f[:, None]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def periodic_noise(rng: np.random.Generator, size: int, octaves: int = 6) -> np.ndarray:
    """float64 [size] smooth noise that wraps around (sines of whole periods, random phases)."""
    t = np.linspace(0.0, 2 * math.pi, size, endpoint=False)
    out = np.zeros(size)
    for k in range(octaves):
        frequency = 2**k
        out += np.sin(frequency * t + rng.uniform(0, 2 * math.pi)) / frequency
    return out


def generate(config: TerrainConfig, rng: np.random.Generator) -> Layout:
    """Draw one world. The draw order is fixed, so a generator in the same state gives the same world."""
    heights, cell = _heights(config, rng)
    ground_texture, sky_texture = _ground_texture(config.texture_size, rng), _sky_texture(rng)
    half = cell * (config.grid - 1) / 2

    def ground(x: float, y: float) -> float:
        return ground_height(heights, cell, x, y)

    start = (float(rng.uniform(-0.2, 0.2) * half), float(rng.uniform(-0.2, 0.2) * half), float(rng.uniform(-math.pi, math.pi)))
    placed: list[tuple[float, float, float]] = []  # x, y, keep-out radius

    def spot(radius: float) -> tuple[float, float] | None:
        for _ in range(30):
            x, y = rng.uniform(-0.9, 0.9, size=2) * half
            if math.hypot(x - start[0], y - start[1]) < config.clear_radius + radius:
                continue
            if all(math.hypot(x - px, y - py) > radius + pr for px, py, pr in placed):
                placed.append((float(x), float(y), radius))
                return float(x), float(y)
        return None

    rocks = []
    for _ in range(config.rocks):
        size = float(rng.uniform(0.3, 1.2))
        radii = np.array([size * rng.uniform(1.0, 1.6), size, size * rng.uniform(0.5, 0.8)])
        vertices = _blob(rng, radii)
        euler = (float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-math.pi, math.pi)))
        grey = float(rng.uniform(0.36, 0.56))
        where = spot(float(radii[0]))
        if where is not None:
            z = ground(*where) + 0.35 * radii[2]
            rocks.append(Rock((*where, z), euler, vertices, (grey, grey * 0.97, grey * 0.92, 1.0)))
    trees = []
    for _ in range(config.trees):
        spread = float(rng.uniform(1.2, 2.4))
        depth = spread * float(rng.uniform(0.8, 1.2))  # vertical radius of the canopy
        canopy = _blob(rng, np.array([spread, spread, depth]))
        height = float(rng.uniform(1.8, 3.0)) + depth  # the canopy's lowest point stays 1.8 m or more up
        green = (float(rng.uniform(0.12, 0.22)), float(rng.uniform(0.28, 0.40)), float(rng.uniform(0.08, 0.15)), 1.0)
        radius = float(rng.uniform(0.15, 0.3))
        where = spot(1.0)
        if where is not None:
            trees.append(Tree((*where, ground(*where)), radius, height, canopy, height + 0.2 * depth, green))
    grass = []
    for _ in range(config.grass_patches):
        extent = float(rng.uniform(1.5, 4.0))
        where = spot(extent)
        if where is not None:
            grass.append(_grass_patch(rng, ground, where, extent))
    return Layout(heights, cell, ground_texture, sky_texture, tuple(rocks), tuple(trees), tuple(grass), start)


def _heights(config: TerrainConfig, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    n = config.grid
    cell = config.size / (n - 1)
    octaves = [(max(2, round(config.size / 30)), 1.0), (max(3, round(config.size / 12)), 0.3), (max(4, round(config.size / 5)), 0.08)]
    heights = sum(amplitude * smooth_noise(rng, n, cells) for cells, amplitude in octaves) * config.relief
    r = np.hypot(*np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n)))
    heights = heights + config.relief * 1.5 * np.clip(r - 0.6, 0, None) ** 2 / 0.16  # hills rise at the rim
    return heights - (heights.max() + heights.min()) / 2, cell


def _ground_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    grassy = np.clip(smooth_noise(rng, size, 10) * 1.2 + 0.75, 0, 1)[..., None]
    muddy = np.clip(smooth_noise(rng, size, 24) * 1.5 - 1.2, 0, 1)[..., None]
    colour = (GRASS * grassy + DIRT * (1 - grassy)) * (1 - muddy) + MUD * muddy
    shade = 1.0 + 0.12 * smooth_noise(rng, size, 60)[..., None] + rng.uniform(-0.22, 0.22, size=(size, size, 1))
    return np.clip(colour * shade, 0, 255).astype(np.uint8)


def _sky_texture(rng: np.random.Generator) -> np.ndarray:
    height, width = SKY_SIZE
    v = np.linspace(0.0, 1.0, height)[:, None, None]
    zenith, horizon = np.array([92.0, 132.0, 196.0]), np.array([196.0, 208.0, 220.0])
    sky = zenith * (1 - v**0.7) + horizon * v**0.7
    clouds = np.clip(smooth_noise(rng, width, 16)[:height] * 0.9 - 0.3, 0, 1)[..., None] * (1 - v) ** 0.5
    sky = sky * (1 - clouds) + 236.0 * clouds
    ridge = 0.70 - 0.06 * periodic_noise(rng, width)  # row fraction where the distant hills begin
    hills = np.arange(height)[:, None] / (height - 1) > ridge[None, :]
    sky[hills] = np.array([88.0, 104.0, 92.0])
    return np.clip(sky, 0, 255).astype(np.uint8)


ICOSAHEDRON_FACES = np.array([
    [0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
    [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1],
])


def _icosahedron() -> np.ndarray:
    p = (1 + 5**0.5) / 2
    v = np.array([[-1, p, 0], [1, p, 0], [-1, -p, 0], [1, -p, 0], [0, -1, p], [0, 1, p], [0, -1, -p], [0, 1, -p],
                  [p, 0, -1], [p, 0, 1], [-p, 0, -1], [-p, 0, 1]], dtype=np.float64)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _blob(rng: np.random.Generator, radii: np.ndarray) -> np.ndarray:
    """[12, 3] vertices of a lumpy ellipsoid (an icosahedron with each vertex pushed in or out)."""
    return _icosahedron() * rng.uniform(0.8, 1.2, size=(12, 1)) * radii


def _grass_patch(rng: np.random.Generator, ground, centre: tuple[float, float], extent: float) -> GrassPatch:
    """Thin three-sided blades, 0.5 .. 1.3 m tall, leaning a little, in one mesh."""
    count = int(25 * extent**1.5)
    vertices, indices = [], []
    for blade in range(count):
        x, y = np.asarray(centre) + rng.normal(size=2) * extent / 2
        foot = ground(float(x), float(y)) - 0.05
        angle = rng.uniform(0, 2 * math.pi)
        base = [(x + 0.12 * math.cos(angle + k * 2.094), y + 0.12 * math.sin(angle + k * 2.094), foot) for k in range(3)]
        lean = rng.normal(size=2) * 0.15
        tip = (x + lean[0], y + lean[1], foot + rng.uniform(0.5, 1.3))
        vertices += [*base, tip]
        first = 4 * blade
        indices += [first, first + 1, first + 3, first + 1, first + 2, first + 3, first + 2, first, first + 3]
    straw = float(rng.uniform(0.0, 1.0))
    rgba = (0.42 + 0.25 * straw, 0.50 + 0.12 * straw, 0.16 + 0.08 * straw, 1.0)
    return GrassPatch(np.asarray(vertices, dtype=np.float64), np.asarray(indices, dtype=np.int64), rgba)
