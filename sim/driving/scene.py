"""A `terrain.Layout` built into one PyBullet DIRECT client, with the car standing at the start.

`Scene` owns the client and the bodies; it knows nothing of actions, clocks or recording.
Textures reach PyBullet as files (`loadTexture` takes a path): they are written as uncompressed
TGA, which its image loader reads and numpy writes in one line, into a folder the scene owns,
empties for each new world and deletes on `close`.
"""
from __future__ import annotations

import hashlib
import math
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pybullet as pb

from vjepa_wm.sim.franka.client import OwnsClient

from .config import DrivingConfig
from .terrain import ICOSAHEDRON_FACES, Layout
from .vehicle import Vehicle

TRUNK_RGBA = (0.33, 0.24, 0.16, 1.0)
SKY_SEGMENTS = 32  # sides of the sky panorama's prism
DROP_HEIGHT = 0.5  # m above the ground the car is placed before it settles


def write_tga(folder: Path, rgb: np.ndarray) -> Path:
    """uint8 [H, W, 3] RGB as an uncompressed, top-left-origin TGA file named by its content (a
    texture cache keyed by path can then never hand one world another world's texture)."""
    height, width = rgb.shape[:2]
    header = struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, width, height, 24, 0x20)
    data = header + np.ascontiguousarray(rgb[..., ::-1], dtype=np.uint8).tobytes()
    path = folder / f"{hashlib.sha1(data).hexdigest()}.tga"
    if not path.exists():
        path.write_bytes(data)
    return path


class Scene(OwnsClient):
    """One DIRECT client; `build(layout)` replaces whatever world it held by that layout's."""

    def __init__(self, config: DrivingConfig):
        self.config = config
        self.client = pb.connect(pb.DIRECT)
        if self.client < 0:
            raise RuntimeError("PyBullet could not open a DIRECT client")
        self._textures = Path(tempfile.mkdtemp(prefix="vjepa-wm-driving-"))
        self.layout: Layout | None = None
        self.vehicle: Vehicle | None = None
        self._terrain = -1  # body id of the heightfield

    def close(self) -> None:
        super().close()
        shutil.rmtree(self._textures, ignore_errors=True)

    def build(self, layout: Layout) -> Vehicle:
        """Rebuild the world from scratch (a rebuilt world cannot remember earlier contacts, so an
        episode's outcome depends only on its layout and commands) and place the car at the start."""
        c, rates = self.client, self.config.rates
        pb.resetSimulation(physicsClientId=c)
        for stale in self._textures.iterdir():  # the last world's
            stale.unlink()
        # Same calls -> same result: PyBullet orders overlapping pairs deterministically only on request.
        pb.setPhysicsEngineParameter(fixedTimeStep=1.0 / rates.physics_hz, deterministicOverlappingPairs=1, physicsClientId=c)
        pb.setGravity(0, 0, -9.81, physicsClientId=c)
        self.layout = layout
        self._ground(layout)
        self._sky(layout)
        for rock in layout.rocks:
            vertices = rock.vertices.tolist()
            collision = pb.createCollisionShape(pb.GEOM_MESH, vertices=vertices, physicsClientId=c)
            visual = pb.createVisualShape(pb.GEOM_MESH, vertices=vertices, indices=ICOSAHEDRON_FACES.ravel().tolist(),
                                          rgbaColor=rock.rgba, physicsClientId=c)
            pb.createMultiBody(0, collision, visual, basePosition=rock.position,
                               baseOrientation=pb.getQuaternionFromEuler(rock.euler), physicsClientId=c)
        for tree in layout.trees:
            x, y, z = tree.position
            half = tree.trunk_height / 2 + 0.3  # the trunk reaches 0.6 m into the ground (it stands on slopes)
            trunk = pb.createCollisionShape(pb.GEOM_CYLINDER, radius=tree.trunk_radius, height=2 * half, physicsClientId=c)
            bark = pb.createVisualShape(pb.GEOM_CYLINDER, radius=tree.trunk_radius, length=2 * half, rgbaColor=TRUNK_RGBA,
                                        physicsClientId=c)
            pb.createMultiBody(0, trunk, bark, basePosition=(x, y, z + tree.trunk_height / 2 - 0.3), physicsClientId=c)
            canopy = pb.createVisualShape(pb.GEOM_MESH, vertices=tree.canopy.tolist(), indices=ICOSAHEDRON_FACES.ravel().tolist(),
                                          rgbaColor=tree.rgba, physicsClientId=c)
            pb.createMultiBody(0, -1, canopy, basePosition=(x, y, z + tree.canopy_height), physicsClientId=c)
        for patch in layout.grass:  # visual only: the car drives through tall grass
            visual = pb.createVisualShape(pb.GEOM_MESH, vertices=patch.vertices.tolist(), indices=patch.indices.tolist(),
                                          rgbaColor=patch.rgba, physicsClientId=c)
            pb.createMultiBody(0, -1, visual, physicsClientId=c)
        x, y, heading = layout.start
        self.vehicle = Vehicle(c, self.config.vehicle, (x, y, self.ground_height(x, y) + DROP_HEIGHT), heading)
        return self.vehicle

    def ground_height(self, x: float, y: float) -> float:
        """Height of the built terrain at (x, y) (a ray cast, exact for the heightfield's triangles)."""
        hit = pb.rayTest((x, y, 1000.0), (x, y, -1000.0), physicsClientId=self.client)[0]
        return float(hit[3][2]) if hit[0] == self._terrain else self.layout.ground_height(x, y)

    def step(self) -> None:
        pb.stepSimulation(physicsClientId=self.client)

    def _ground(self, layout: Layout) -> None:
        c, n = self.client, len(layout.heights)
        shape = pb.createCollisionShape(pb.GEOM_HEIGHTFIELD, meshScale=[layout.cell, layout.cell, 1.0],
                                        heightfieldData=layout.heights.ravel().tolist(), numHeightfieldRows=n,
                                        numHeightfieldColumns=n, physicsClientId=c)
        self._terrain = pb.createMultiBody(0, shape, physicsClientId=c)
        pb.changeDynamics(self._terrain, -1, lateralFriction=self.config.vehicle.friction, physicsClientId=c)
        texture = pb.loadTexture(str(write_tga(self._textures, layout.ground_texture)), physicsClientId=c)
        pb.changeVisualShape(self._terrain, -1, textureUniqueId=texture, rgbaColor=(1, 1, 1, 1), physicsClientId=c)

    def _sky(self, layout: Layout) -> None:
        """A prism around the terrain with a cone on top, the panorama texture wrapped once around it."""
        c = self.client
        radius = 1.6 * layout.half_size  # 0.8 terrain sides: outside the corners (0.71)
        bottom, top, zenith = -0.2 * radius, 0.7 * radius, 1.1 * radius
        vertices, uvs, indices = [], [], []
        for k in range(SKY_SEGMENTS + 1):
            angle = 2 * math.pi * k / SKY_SEGMENTS
            x, y, u = radius * math.cos(angle), radius * math.sin(angle), k / SKY_SEGMENTS
            vertices += [(x, y, bottom), (x, y, top), (0.0, 0.0, zenith)]
            uvs += [(u, 1.0), (u, 0.25), (u, 0.0)]
        for k in range(SKY_SEGMENTS):
            low, high, peak, low2, high2 = 3 * k, 3 * k + 1, 3 * k + 2, 3 * k + 3, 3 * k + 4
            for face in ((low, high, low2), (low2, high, high2), (high, peak, high2)):
                indices += [*face, *face[::-1]]  # both windings: seen from inside whatever the culling
        visual = pb.createVisualShape(pb.GEOM_MESH, vertices=vertices, indices=indices, uvs=uvs, physicsClientId=c)
        sky = pb.createMultiBody(0, -1, visual, physicsClientId=c)
        texture = pb.loadTexture(str(write_tga(self._textures, layout.sky_texture)), physicsClientId=c)
        pb.changeVisualShape(sky, -1, textureUniqueId=texture, rgbaColor=(1, 1, 1, 1), physicsClientId=c)
