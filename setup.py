"""The pip distribution and ROS 2 ament_python package `vjepa_wm` (pip also accepts `vjepa-wm`).

The rooms are top-level folders of the repository and are installed as subpackages of one
import root, `vjepa_wm` (`vjepa_wm.world_model`, `vjepa_wm.datasets`, ...), so nothing generic
lands in site-packages. Name, version, description, maintainer and licence are read from
package.xml, the one place they are written. Requirements are compatible ranges with tested
lower bounds; the exact tested set is constraints.txt, which `make` installs with.
"""
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
ROOMS = ["embodiments", "world_model", "datasets", "planner", "sim", "ros_nodes"]
PACKAGE = ElementTree.parse(ROOT / "package.xml").getroot()
NAME = PACKAGE.findtext("name")


def room_packages() -> tuple[list[str], dict[str, str]]:
    """Every package under vjepa_wm/ and under each room folder, named below the `vjepa_wm` root."""
    packages = find_packages(include=[NAME, f"{NAME}.*"])
    directories = {NAME: NAME}
    for room in ROOMS:
        directories[f"{NAME}.{room}"] = room
        packages += [f"{NAME}.{room}"] + [f"{NAME}.{room}.{sub}" for sub in find_packages(room)]
    return packages, directories


PACKAGES, PACKAGE_DIRS = room_packages()
maintainer = PACKAGE.find("maintainer")

setup(
    name=NAME,
    version=PACKAGE.findtext("version"),
    description=" ".join(PACKAGE.findtext("description").split()),
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    maintainer=maintainer.text,
    maintainer_email=maintainer.get("email"),
    license=PACKAGE.findtext("license"),
    python_requires=">=3.11",
    packages=PACKAGES,
    package_dir=PACKAGE_DIRS,
    package_data={NAME: ["assets/*/*", "configs/*/*.yaml"]},
    # Lower bounds: the oldest versions the suite passed with (`make test-oldest`, constraints-oldest.txt).
    install_requires=[
        "torch>=2.13",
        "numpy>=2.0.2",
        "opencv-python-headless>=4.10.0.84",
        "h5py>=3.11",
        "safetensors>=0.4.3",
        "PyYAML>=6.0.1",
        "tqdm>=4.66.1",
        "matplotlib>=3.9",
        "pybullet>=3.2.7",  # the first release built for numpy 2
        "gymnasium>=1.0",
        "tensorboard>=2.18",
        "rosbags>=0.11.9",  # ROS 1 / ROS 2 bags without a ROS install (TartanDrive, datasets/tartandrive)
        "av>=15.0.0",  # PyAV: AV1 (dav1d / SVT-AV1) and H.264 (x264) video: LeRobot datasets, browser-playable outputs
        "pyarrow>=26.0.1",  # LeRobot datasets' parquet files
        "huggingface_hub>=1.3.0",  # hub ids for models and LeRobot datasets, export-hub --push
    ],
    extras_require={
        # DROID RLDS reading (datasets/droid/rlds.py), imported only when an RLDS pass starts.
        "rlds": ["tensorflow-cpu>=2.18", "tensorflow-datasets>=4.9.7"],
        # The test suite: the independent implementations it compares against, scipy's rotations
        # as an oracle, evo (the trajectory metrics NWM reports), and what the packaging test builds with.
        "test": ["pytest>=8.0", "pytest-timeout>=2.4.0", "transformers>=5.0", "einops>=0.8", "scipy>=1.13.1", "evo>=1.38.1", "build>=1.2.1", "setuptools>=77.0.3",
                 "wheel>=0.40"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{NAME}"]),
        (f"share/{NAME}", ["package.xml"]),
        # one YAML per deployment and the launch files that read them (`ros2 launch vjepa_wm <name>.launch.py`)
        (f"share/{NAME}/config", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "config").glob("*.yaml"))),
        (f"share/{NAME}/launch", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "launch").glob("*.launch.py"))),
    ],
    entry_points={"console_scripts": [
        "vjepa-wm = vjepa_wm.cli:main",
        # ROS 2 nodes (`ros2 run vjepa_wm <node>` in a colcon workspace)
        "camera_bridge = vjepa_wm.ros_nodes.camera_bridge:main",
        "sim_node = vjepa_wm.ros_nodes.sim_node:main",
        "watchdog = vjepa_wm.ros_nodes.watchdog_node:main",
        "planner_node = vjepa_wm.ros_nodes.planner_node:main",
    ]},
    zip_safe=False,
)
