"""`vjepa-wm bench ros`, run tiny (a few steps, frames and watchdog trips) over real DDS on
localhost: the table's rows and the same figures in --json, each consistent with how it was
measured (a step through the bridge includes its apply; every hold comes after its input's
limit passed; the in-process step is the ratios' baseline)."""
from __future__ import annotations

import json

import pytest
from ros_helpers import DOMAIN_ID

from vjepa_wm.cli import main
from vjepa_wm.ros_nodes.watchdog_rules import HOLD_BUDGET_S


def test_bench_ros_prints_the_table_and_writes_the_same_figures(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path / "log"))
    out = tmp_path / "ros.json"
    assert main(["bench", "ros", "--steps", "2", "--frames", "5", "--trips", "2", "--image_size", "48",
                 "--domain_id", str(DOMAIN_ID), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    records = {(r["measure"], r["path"]): r for r in json.loads(out.read_text())}
    assert set(records) == {("step (observe + apply)", "in-process"), ("image transport", "ros"),
                            ("command round trip (apply)", "ros"), ("step (observe + apply)", "ros"),
                            ("watchdog hold: heartbeat stopped", "ros"), ("watchdog hold: camera stopped", "ros"),
                            ("watchdog hold: all trips", "ros")}
    for (measure, path), record in records.items():
        assert f"{measure} " in table and record["benchmark"] == "ros"
        assert 0 <= record["min_ms"] <= record["p50_ms"] <= record["p95_ms"] <= record["max_ms"], record
    baseline = records["step (observe + apply)", "in-process"]
    assert baseline["n"] == 2 and baseline["ratio"] == pytest.approx(1.0)  # the baseline of every ratio
    step, apply = records["step (observe + apply)", "ros"], records["command round trip (apply)", "ros"]
    assert step["n"] == apply["n"] == 2 and step["min_ms"] >= apply["min_ms"]
    for record in (step, apply, records["image transport", "ros"]):
        assert record["ratio"] == pytest.approx(record["p50_ms"] / baseline["p50_ms"])
    assert records["image transport", "ros"]["n"] == 5
    holds = records["watchdog hold: all trips", "ros"]
    assert holds["n"] == 2 and records["watchdog hold: heartbeat stopped", "ros"]["n"] == 1
    for kind in ("heartbeat", "camera", "all trips"):
        record = records[f"watchdog hold: {kind}" + (" stopped" if kind != "all trips" else ""), "ros"]
        assert record["bound_ms"] == HOLD_BUDGET_S * 1e3 and record["ratio"] is None
        assert record["within_bound"] == (record["max_ms"] <= HOLD_BUDGET_S * 1e3)
