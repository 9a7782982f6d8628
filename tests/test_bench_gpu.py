"""The GPU suite cannot rot: its dry run runs every row at tiny sizes on a CPU.

The dry run goes through scripts/gpu_suite.sh, as on a lent GPU machine (the package laid out
by links, `gpu_main` instead of the whole command line), with PyBullet, gymnasium, TensorBoard
and rosbags made unimportable, since that machine has none of them. Failure, out-of-memory,
budget and model-sharing behaviour is checked through the command line and `run_rows`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vjepa_wm.benchmarks import gpu_rows
from vjepa_wm.benchmarks.gpu_suite import ROW_NAMES, RowSpec, Suite, run_rows
from vjepa_wm.cli import main

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("pybullet", "gymnasium", "tensorboard", "rosbags")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The whole dry run through the GPU machine's script; its exit status, JSON, markdown and output."""
    tmp = tmp_path_factory.mktemp("gpu_suite")
    blockers = tmp / "blockers"
    blockers.mkdir()
    for name in BLOCKED:
        (blockers / f"{name}.py").write_text(f"raise ImportError('{name} is not on a GPU machine')\n")
    env = {**os.environ, "OUT": str(tmp / "out"), "PYTHON": sys.executable, "TMPDIR": str(tmp), "PYTHONPATH": str(blockers),
           "GPU_SUITE_ARGS": "--dry-run --device cpu --compile-backend eager"}
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_suite.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    report = json.loads((tmp / "out" / "gpu_suite.json").read_text())
    return done, report, (tmp / "out" / "gpu_suite.md").read_text()


def test_dry_run_measures_every_row(dry_run):
    done, report, _ = dry_run
    assert done.returncode == 0, done.stderr[-2000:]
    assert report["dry_run"] is True and report["torch"] == torch.__version__ and report["device"].startswith("cpu")
    assert [row["name"] for row in report["rows"]] == list(ROW_NAMES)
    for row in report["rows"]:
        assert row["error"] is None and row["skipped"] is None, row
        for key in ("seconds", "figure", "wall_s"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["name"], key)
        assert row["matmul_fraction"] is None or (math.isfinite(row["matmul_fraction"]) and row["matmul_fraction"] > 0)
        assert row["peak_gib"] is None  # peak memory is a GPU figure
    # every fraction is of the one matmul rate measured in this run
    by_name = {row["name"]: row for row in report["rows"]}
    rate = by_name["matmul"]["figure"]
    assert report["matmul_tflops"] == pytest.approx(rate)
    for name in ("plan_published", "encoder_vit_g", "pretrain_vit_l"):
        assert by_name[name]["details"]["matmul_tflops"] == pytest.approx(rate), name


def test_dry_run_figures_are_what_the_rows_say(dry_run):
    _, report, markdown = dry_run
    rows = {row["name"]: row for row in report["rows"]}
    dry = gpu_rows.DRY
    assert rows["plan_published"]["details"]["samples"] == dry.published.samples
    assert rows["plan_lean"]["figure"] == rows["plan_lean"]["seconds"]
    encoder = rows["encoder_vit_l"]
    assert encoder["figure"] * encoder["seconds"] == pytest.approx(dry.encoder_l.frames)
    pretrain = rows["pretrain_vit_l"]
    assert pretrain["details"]["batches_fitted"] == list(dry.pretrain.batches)
    assert pretrain["figure"] * pretrain["seconds"] == pytest.approx(dry.pretrain.batches[-1])
    assert rows["ac_published"]["figure"] * rows["ac_published"]["seconds"] == pytest.approx(dry.ac.batch)
    droid = rows["droid_180p"]["details"]
    assert droid["loader_margin"] == pytest.approx(rows["droid_180p"]["figure"] / rows["ac_published"]["figure"])
    compiled = rows["plan_lean_compile"]
    assert compiled["details"]["compile_backend"] == "eager" and compiled["baseline"] == "plan_lean"
    assert compiled["speedup"] == pytest.approx(rows["plan_lean"]["seconds"] / compiled["seconds"])
    assert rows["plan_lean_sdpa_math"]["details"]["sdpa"] == "math"
    # README rows: one per row, the table printed last by the script
    assert all(f"| `{name}` |" in markdown for name in ROW_NAMES)


def test_dry_run_stays_clear_of_the_simulators(dry_run):
    done, _, markdown = dry_run
    assert "is not on a GPU machine" not in done.stdout + done.stderr
    assert done.stdout.rstrip().endswith(markdown.rstrip().splitlines()[-1])


def test_failed_row_is_recorded_and_later_rows_still_run(tmp_path, monkeypatch, capsys):
    impossible = dataclasses.replace(gpu_rows.DRY, encoder_l=gpu_rows.EncoderSize("no_such_preset", 4, 64))
    monkeypatch.setattr(gpu_rows, "DRY", impossible)
    path = tmp_path / "gpu.json"
    code = main(["bench", "gpu", "--dry-run", "--device", "cpu", "--rows", "matmul,encoder_vit_g,encoder_vit_l,ac_published",
                 "--fail-rows", "encoder_vit_g", "--json", str(path)])
    assert code == 1  # a row failed that was not made to
    rows = {row["name"]: row for row in json.loads(path.read_text())["rows"]}
    assert list(rows) == ["matmul", "encoder_vit_g", "encoder_vit_l", "ac_published"]
    assert rows["encoder_vit_g"]["error"] == "RuntimeError: made to fail by --fail-rows"
    assert rows["encoder_vit_l"]["error"].startswith("ValueError: unknown encoder preset 'no_such_preset'")
    assert rows["encoder_vit_l"]["seconds"] is None
    assert rows["ac_published"]["error"] is None and rows["ac_published"]["figure"] > 0
    assert "failed: RuntimeError: made to fail" in capsys.readouterr().out


def test_unknown_row_is_a_one_line_error(capsys):
    assert main(["bench", "gpu", "--dry-run", "--rows", "plan_fast"]) == 2
    assert "unknown row 'plan_fast'" in capsys.readouterr().err


def test_full_suite_refuses_a_cpu(capsys):
    assert main(["bench", "gpu", "--device", "cpu"]) == 2
    assert "needs a GPU" in capsys.readouterr().err


def _suite(budget_s: float, dry_run: bool = True) -> Suite:
    return Suite(torch.device("cpu"), gpu_rows.DRY, 1, budget_s, dry_run)


def test_rows_past_the_budget_are_skipped_with_the_reason():
    import time

    def slow(suite):
        time.sleep(0.05)
        return {"seconds": 0.05, "figure": 1.0, "unit": "x"}

    rows = run_rows((RowSpec("first", slow, 0, "spends the budget"), RowSpec("second", slow, 0, "too late")), _suite(0.01))
    assert rows[0]["skipped"] is None and rows[0]["figure"] == 1.0
    assert rows[1]["skipped"].startswith("budget:") and rows[1]["figure"] is None
    # outside a dry run a row's expected time counts: one that would end past the budget never starts
    rows = run_rows((RowSpec("quick", slow, 1, ""), RowSpec("long", slow, 100, "")), _suite(10, dry_run=False))
    assert rows[0]["skipped"] is None and "about 100 s" in rows[1]["skipped"]


def test_out_of_memory_is_recorded_and_the_suite_goes_on():
    def oom(suite):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB\nmore text")

    rows = run_rows((RowSpec("big", oom, 0, ""), RowSpec("small", lambda s: {"seconds": 1.0}, 0, "")), _suite(60))
    assert rows[0]["error"] == "out of memory: CUDA out of memory. Tried to allocate 80.00 GiB"
    assert rows[1]["error"] is None and rows[1]["seconds"] == 1.0


def test_largest_fitting_batch():
    def try_batch(batch):
        if batch > 48:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return {"batch": batch}

    found = gpu_rows.largest_fitting(try_batch, (24, 48, 96, 192), lambda: 1e9)
    assert found["batch"] == 48 and found["batches_fitted"] == [24, 48]
    assert found["search_stopped"] == "out of memory at batch 96"
    assert gpu_rows.largest_fitting(try_batch, (24, 48), lambda: 0.0)["search_stopped"] == "budget"
    with pytest.raises(torch.OutOfMemoryError):
        gpu_rows.largest_fitting(try_batch, (96,), lambda: 1e9)


def test_a_model_is_built_once_for_the_rows_that_share_it():
    builds = []

    def uses(key):
        def measure(suite):
            suite.model(key, lambda: builds.append(key) or object())
            return {"seconds": 1.0}
        return measure

    specs = (RowSpec("a", uses("g"), 0, "", model_key="g"), RowSpec("b", uses("g"), 0, "", model_key="g"),
             RowSpec("c", uses("s"), 0, "", model_key="s"), RowSpec("d", uses("g"), 0, "", model_key="g"))
    suite = _suite(60)
    run_rows(specs, suite)
    assert builds == ["g", "s", "g"] and suite.model_key is None  # dropped after the last row
