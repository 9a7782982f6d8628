"""`vjepa-wm demo` (what `make demo` runs) with the bundled sim model, shortened."""
from __future__ import annotations

from vjepa_wm.cli import main
from vjepa_wm.sim_model import BUNDLED_SIM_MODEL, load_sim_model


def test_bundled_model_loads_and_fits_the_size_budget():
    model = load_sim_model()
    size = sum(p.stat().st_size for p in BUNDLED_SIM_MODEL.iterdir())
    assert size <= 20 * 2**20
    assert model.img_size == 128 and model.encoder.config.version == "2.1"


def test_demo_plans_prints_outcomes_and_writes_video_and_plot(tmp_path, capsys):
    assert main(["demo", "--episodes", "1", "--max-steps", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "episode seed 20000:" in out and "success rate" in out
    assert (tmp_path / "reach_seed20000.mp4").stat().st_size > 0
    assert (tmp_path / "reach_seed20000_energy.png").stat().st_size > 0


def test_demo_ros_refuses_a_task_it_cannot_score_over_ros_in_one_line(tmp_path, capsys):
    assert main(["demo", "--ros", "--task", "grasp", "--episodes", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ros runs the reach task" in err[0]
    assert not any(tmp_path.iterdir())  # refused before any node was started
