"""`vjepa-wm bench droid`: a generated raw dataset is decoded and the figures land in the table and JSON."""
from __future__ import annotations

import json

import pytest

from vjepa_wm.benchmarks.droid import parse_sizes
from vjepa_wm.cli import main


def test_bench_droid_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "droid.json"
    code = main(["bench", "droid", "--sizes", "64x96", "--episodes", "2", "--rows", "40", "--workers", "0",
                 "--repeats", "1", "--clips-per-episode", "3", "--json", str(out)])
    assert code == 0
    records = json.loads(out.read_text())
    assert len(records) == 1
    record = records[0]
    assert record["benchmark"] == "droid" and record["resolution"] == "96x64" and record["episodes"] == 2
    assert record["clips"] == 6 and record["clips_per_s"] > 0
    assert record["frames_per_s"] == pytest.approx(record["clips_per_s"] * 8)
    table = capsys.readouterr().out
    assert "clips_per_s" in table and "96x64" in table


def test_bench_droid_rejects_bad_sizes():
    assert parse_sizes("180x320,720x1280") == [(180, 320), (720, 1280)]
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        parse_sizes("180by320")
    assert main(["bench", "droid", "--sizes", "7x9"]) == 2
