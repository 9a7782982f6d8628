"""The package as a user installs it: sdist -> wheel -> a fresh environment beside Hugging Face `datasets`.

The fresh environment gets our wheel and Hugging Face's `datasets` wheel (the one `make test`
keeps in .venv/wheels) installed into its own site-packages; their dependencies (torch, pyarrow,
...) come from the test environment through a path file, so nothing is downloaded here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import xml.etree.ElementTree as ElementTree
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from helpers import ROOT

WHEELS = Path(sys.prefix) / "wheels"
PACKAGE = ElementTree.parse(ROOT / "package.xml").getroot()


def run(args: list, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, env={**env, **kwargs}, timeout=600)
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The sdist of this checkout and the wheel built from that sdist (so the sdist is known to install)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", out, ROOT], cwd=out)
    (sdist,) = out.glob("*.tar.gz")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, sdist], cwd=out)
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_the_wheel_holds_one_import_root_and_its_data(built):
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"vjepa_wm"}
    for room in ("embodiments", "world_model/checkpoints", "datasets/droid", "planner", "sim/franka", "ros_nodes"):
        assert f"vjepa_wm/{room}/__init__.py" in names, room
    assert "vjepa_wm/configs/train_ac/sim.yaml" in names and "vjepa_wm/assets/sim_model/model.safetensors" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    assert any(n.endswith("share/ament_index/resource_index/packages/vjepa_wm") for n in names)
    # package.xml is the one place name, version and licence are written.
    assert f"Name: {PACKAGE.findtext('name')}" in metadata and f"Version: {PACKAGE.findtext('version')}" in metadata
    assert f"License: {PACKAGE.findtext('license')}" in metadata
    requirements = [Requirement(line.split(":", 1)[1]) for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    pinned = [str(r) for r in requirements if any(spec.operator in ("==", "===") for spec in r.specifier)]
    assert len(requirements) > 10 and not pinned  # compatible ranges, never exact pins


def test_the_sdist_carries_what_setup_needs(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"package.xml", "README.md", "LICENSE", "setup.py", "setup.cfg", "pyproject.toml", "resource/vjepa_wm"} <= names
    assert "vjepa_wm/configs/pretrain/tiny_sim.yaml" in names


def test_installed_beside_hugging_face_datasets_both_work_and_uninstalling_ours_keeps_theirs(built, tmp_path):
    hf_wheels = sorted(WHEELS.glob("datasets-*.whl"))
    assert hf_wheels, f"no Hugging Face datasets wheel in {WHEELS} (make test downloads it)"
    env_dir = tmp_path / "fresh"
    run([sys.executable, "-m", "venv", env_dir], cwd=tmp_path)
    python = env_dir / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).stdout.strip())
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch, pyarrow, ... from here
    # --ignore-installed: the test environment's copies, seen through the path file, must not count.
    for wheel in (hf_wheels[-1], built["wheel"]):
        run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", wheel], cwd=tmp_path)
    assert sorted(p.name for p in site.iterdir() if p.name in ("vjepa_wm", "datasets", "sim", "planner", "world_model")) == \
        ["datasets", "vjepa_wm"]  # one new top-level name: ours lives under vjepa_wm/

    check = tmp_path / "check.py"
    check.write_text(f'''
import importlib, json, pkgutil, sys
import datasets
from datasets import load_dataset
rows = load_dataset("json", data_files={str(tmp_path / "rows.jsonl")!r}, split="train")
import vjepa_wm
modules = [m.name for m in pkgutil.walk_packages(vjepa_wm.__path__, "vjepa_wm.")]
for room in ("embodiments", "world_model", "datasets", "planner", "sim", "ros_nodes"):
    package = importlib.import_module("vjepa_wm." + room)
    modules += [package.__name__] + [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in modules:
    importlib.import_module(name)
from vjepa_wm.datasets.droid.raw_reader import DroidRawDataset
print(json.dumps({{"hf": datasets.__file__, "rows": len(rows), "ours": vjepa_wm.__file__, "modules": len(modules),
                  "version": vjepa_wm.__version__}}))
''')
    (tmp_path / "rows.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    report = json.loads(run([python, check], cwd=tmp_path, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1").stdout.strip().splitlines()[-1])
    assert report["hf"].startswith(str(site)) and report["ours"].startswith(str(site)) and report["rows"] == 2
    assert report["modules"] > 60 and report["version"] == PACKAGE.findtext("version")
    cli = env_dir / "bin" / "vjepa-wm"
    assert run([cli, "--version"], cwd=tmp_path).stdout.strip() == f"vjepa-wm {PACKAGE.findtext('version')}"
    printed = run([cli, "train-ac", "--config", "sim", "--print-config"], cwd=tmp_path).stdout  # shipped configs by name
    assert "predictor: sim" in printed

    run([python, "-m", "pip", "uninstall", "-y", "-q", "vjepa-wm"], cwd=tmp_path)
    assert (site / "datasets" / "__init__.py").is_file() and not (site / "vjepa_wm").exists()
    after = run([python, "-c", "import datasets, datasets.load; print(datasets.__file__)"], cwd=tmp_path).stdout.strip()
    assert after.startswith(str(site))
