"""Where the Panda model comes from: `pybullet_data`'s URDF, or a low-poly copy generated at run time.

The low-poly copy points every visual mesh at the matching collision mesh (~3.5k instead of ~100k
triangles, which is what TinyRenderer's speed depends on). It is generated into a cache folder on
first use, never committed: it is a pure function of the installed `pybullet_data`.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import pybullet_data

PANDA_RELATIVE = "franka_panda/panda.urdf"


def panda_urdf(low_poly: bool) -> str:
    """Path of the Panda URDF to load (full visual meshes, or the generated low-poly copy)."""
    original = Path(pybullet_data.getDataPath()) / PANDA_RELATIVE
    if not low_poly:
        return str(original)
    return str(_low_poly_copy(original))


def cache_dir() -> Path:
    """$VJEPA_WM_CACHE/sim, else ~/.cache/vjepa_wm/sim (falling back to the temp dir if unwritable)."""
    root = os.environ.get("VJEPA_WM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vjepa_wm")
    path = Path(root) / "sim"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        path = Path(tempfile.gettempdir()) / "vjepa_wm_sim"
        path.mkdir(parents=True, exist_ok=True)
    return path


def _low_poly_copy(original: Path) -> Path:
    text = original.read_text()
    meshes = original.parent / "meshes"

    def collision_mesh(match: re.Match) -> str:
        return f'filename="{meshes / "collision" / match.group(1)}.obj"'

    low = re.sub(r'filename="package://meshes/(?:visual|collision)/([A-Za-z0-9_]+)\.obj"', collision_mesh, text)
    digest = hashlib.sha256(low.encode()).hexdigest()[:12]
    target = cache_dir() / f"panda_lowpoly_{digest}.urdf"
    if not target.is_file():
        # Written under a unique name and renamed, so parallel workers never read a half file.
        handle, partial = tempfile.mkstemp(dir=target.parent, suffix=".partial")
        with os.fdopen(handle, "w") as out:
            out.write(low)
        os.replace(partial, target)
    return target
