"""`vjepa-wm bench ac` prints its table and writes one JSON record per configuration."""
from __future__ import annotations

import json

from vjepa_wm.cli import main


def test_bench_ac_sim_record(tmp_path, capsys):
    code = main(["bench", "ac", "--configs", "sim", "--repeats", "1", "--no-decode", "--device", "cpu",
                 "--json", str(tmp_path / "ac.json")])
    assert code == 0
    (record,) = json.loads((tmp_path / "ac.json").read_text())
    assert record["config"] == "sim" and record["batch"] == 32 and record["steps_per_s"] > 0
    assert 0 < record["matmul_fraction"] < 2
    assert "steps_per_s" in capsys.readouterr().out
