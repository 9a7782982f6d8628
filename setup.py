"""pip distribution `vjepa-wm`, which is also the ROS 2 ament_python package `vjepa_wm`."""
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE_NAME = "vjepa_wm"
ROOMS = ["world_model", "planner", "ros_nodes", "sim", "datasets", "benchmarks", "vjepa_wm"]


def _requirements(name: str = "requirements.txt") -> list[str]:
    lines = Path(__file__).with_name(name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _share_files(folder: str) -> list[tuple[str, list[str]]]:
    """Install every file under `folder` into share/<package>/<folder>, keeping the tree."""
    entries = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            target = str(Path("share") / PACKAGE_NAME / path.parent)
            entries.setdefault(target, []).append(str(path))
    return sorted(entries.items())


setup(
    name="vjepa-wm",
    version="0.1.0",
    description="V-JEPA world-model planning for robots (encoder, AC predictor, CEM/MPC, ROS 2, PyBullet sim)",
    python_requires=">=3.11",
    packages=find_packages(include=[room + suffix for room in ROOMS for suffix in ("", ".*")]),
    include_package_data=True,
    package_data={"vjepa_wm": ["assets/*", "assets/*/*"]},
    install_requires=_requirements(),
    extras_require={"rlds": _requirements("requirements-rlds.txt")},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
        *_share_files("configs"),
    ],
    entry_points={"console_scripts": ["vjepa-wm = vjepa_wm.cli:main"]},
    zip_safe=False,
)
