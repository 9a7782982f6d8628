"""vjepa_wm: world-model planning for robots. This package is the import root of every room
(`vjepa_wm.embodiments`, `.world_model`, `.datasets`, `.planner`, `.sim`, `.ros_nodes`) and the top
floor: the `vjepa-wm` command line, evaluations, benchmarks and the bundled models."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vjepa_wm")  # from package.xml, through the installed metadata
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
