"""nav-replay: NWM's path metrics against evo, and the evaluation end to end on a tiny written dataset."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from evo.core import metrics
from evo.core import trajectory as evo_trajectory
from evo.core.metrics import PoseRelation

from vjepa_wm.commands import nav_replay
from vjepa_wm.datasets.tartandrive.nwm_format import write_eval_index, write_trajectory
from vjepa_wm.embodiments import Car, Franka
from vjepa_wm.evaluation.nav import NavReplayConfig, evaluate
from vjepa_wm.evaluation.trajectory_metrics import path_errors
from vjepa_wm.planner.cem import CEMConfig
from vjepa_wm.planner.nav_candidates import StraightLineConfig, StraightLines
from vjepa_wm.world_model.ac_predictor import ACPredictor, ac_predictor_config
from vjepa_wm.world_model.checkpoints import save_world_model
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config
from vjepa_wm.world_model.world_model import WorldModel


def evo_path(poses, real_yaw: bool):
    """An evo trajectory of planar poses; NWM's own call holds one orientation for all poses."""
    poses = np.asarray(poses, dtype=np.float64)
    xyz = np.concatenate([poses[:, :2], np.zeros((len(poses), 1))], 1)
    yaw = poses[:, 2] if real_yaw else np.full(len(poses), math.pi)  # NWM's quaternion (0, 0, 0, 1)
    wxyz = np.stack([np.cos(yaw / 2), np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2)], 1)
    return evo_trajectory.PoseTrajectory3D(positions_xyz=xyz, orientations_quat_wxyz=wxyz, timestamps=np.arange(len(poses), dtype=float))


def evo_figures(reference, estimate):
    ape = metrics.APE(PoseRelation.translation_part)
    ape.process_data((evo_path(reference, False), evo_path(estimate, False)))
    figures = {"ate": ape.get_statistic(metrics.StatisticsType.rmse)}
    for name, relation, real in (("rpe_trans", PoseRelation.translation_part, False),
                                 ("rpe_rot_deg", PoseRelation.rotation_angle_deg, True)):
        rpe = metrics.RPE(relation, delta=1, delta_unit=metrics.Unit.frames, rel_delta_tol=0.1, all_pairs=False)
        rpe.process_data((evo_path(reference, real), evo_path(estimate, real)))
        figures[name] = rpe.get_statistic(metrics.StatisticsType.rmse)
    return figures


def arc(steps, speed, turn, start=(0.0, 0.0, 0.0)):
    return Car(waypoint_spacing=1.0).rollout(np.asarray(start, float), np.array([[speed, 0.0, turn]] * steps))[1:]


HAND_BUILT = [
    (arc(8, 1.0, 0.0), arc(8, 1.2, 0.0)),  # straight, too fast
    (arc(8, 1.0, 0.2), arc(8, 1.0, -0.1)),  # curving the other way (headings differ each step)
    (arc(8, 1.5, 0.3), np.concatenate([np.cumsum(np.full((8, 2), [1.0, 0.5]), 0), np.full((8, 1), 3.0)], 1)),  # heading wraps
    (np.random.default_rng(0).normal(size=(8, 3)) * [2, 2, 3], np.random.default_rng(1).normal(size=(8, 3)) * [2, 2, 3]),
]


@pytest.mark.parametrize("reference,estimate", HAND_BUILT)
def test_ate_and_rpe_agree_with_evo(reference, estimate):
    ours = path_errors(reference, estimate, reference[-1])
    theirs = evo_figures(reference, estimate)
    for name, value in theirs.items():
        assert math.isclose(ours[name], value, rel_tol=1e-9, abs_tol=1e-9), name
    assert ours["final_pos"] == pytest.approx(np.linalg.norm(estimate[-1, :2] - reference[-1, :2]))
    wrapped = (estimate[-1, 2] - reference[-1, 2] + np.pi) % (2 * np.pi) - np.pi
    assert ours["final_yaw"] == pytest.approx(abs(wrapped))


def test_straight_lines_of_different_speeds_have_the_textbook_figures():
    ours = path_errors(arc(8, 1.0, 0.0), arc(8, 1.5, 0.0), arc(8, 1.0, 0.0)[-1])
    assert ours["ate"] == pytest.approx(0.5 * math.sqrt(np.mean(np.arange(1, 9) ** 2)))
    assert ours["rpe_trans"] == pytest.approx(0.5) and ours["rpe_rot_deg"] == 0 and ours["final_pos"] == pytest.approx(4.0)


# ---------------------------------------------------------------------------- end to end

FRAMES = 14


def car_model():
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config("micro", "2.1"))
    predictor = ACPredictor(ac_predictor_config("micro", 96, img_size=32, action_dim=3))
    return WorldModel(encoder, predictor, 32, Car()).eval()


def write_dataset(root):
    """Two drives of 14 frames (48 x 36 JPEGs): one constant arc, one with a change of curvature."""
    rng = np.random.default_rng(0)
    car = Car()
    names = []
    for name, turns in (("arc_0", [0.1] * (FRAMES - 1)), ("bend_1", [0.2] * 10 + [-0.15] * (FRAMES - 11))):
        start = np.array([5.0, -3.0, 0.7]) if name == "arc_0" else np.array([-1.0, 2.0, -2.0])
        poses = car.rollout(start, np.array([[1.1, 0.0, t] for t in turns]))
        frames = [rng.integers(0, 256, (36, 48, 3), dtype=np.uint8) for _ in range(FRAMES)]
        write_trajectory(root / name, frames, poses[:, :2], poses[:, 2])
        names.append(name)
    write_eval_index(root / "navigation_eval.pkl", [("arc_0", 3, 8, 8), ("bend_1", 3, 8, 8), ("bend_1", 5, 8, 8)])
    return root / "navigation_eval.pkl"


def small_config(tmp_path, index, model_dir, **changes):
    settings = dict(data=str(tmp_path / "data"), index=str(index), model=str(model_dir), random_lines=16,
                    cem=CEMConfig(samples=16, iterations=1, elites=4, horizon=8), out=str(tmp_path / "out"),
                    json=str(tmp_path / "nav.json"))
    return NavReplayConfig(**{**settings, **changes})


@pytest.fixture()
def dataset(tmp_path):
    (tmp_path / "data").mkdir()
    index = write_dataset(tmp_path / "data")
    model_dir = save_world_model(car_model(), tmp_path / "model")
    return index, model_dir


def test_nav_replay_scores_the_model_beside_the_baselines_and_replays(tmp_path, dataset, capsys):
    index, model_dir = dataset
    assert nav_replay.run(small_config(tmp_path, index, model_dir, replay=True, trajectory="bend_1")) == 0
    printed = capsys.readouterr().out
    assert all(m in printed for m in ("model", "constant_velocity", "nwm_mean", "best_line", "ate_wu"))
    report = json.loads((tmp_path / "nav.json").read_text())
    table = {r["method"]: r for r in report["table"]}
    assert list(table) == ["model", "constant_velocity", "nwm_mean", "best_line"] and all(r["plans"] == 3 for r in table.values())
    for r in table.values():
        assert math.isclose(r["ate_m"], 0.72 * r["ate_wu"]) and math.isclose(r["final_pos_m"], 0.72 * r["final_pos_wu"])
    assert table["model"]["seconds_per_plan"] > 0 and table["nwm_mean"]["seconds_per_plan"] is None
    # The first drive is one constant arc: constant velocity from the context is exact there.
    arc_plans = [p for p in report["plans"] if p["trajectory"] == "arc_0"]
    assert all(p["figures"]["constant_velocity"]["ate"] < 1e-6 for p in arc_plans)
    assert all(p["figures"]["model"]["ate"] > 0 for p in report["plans"])
    # NWM's initial mean runs 3.125 waypoints a step; these drives 1.1: the best of 16 lines is closer.
    assert table["best_line"]["ate_wu"] <= table["nwm_mean"]["ate_wu"]
    car = Car()
    for p in report["plans"]:
        planned = np.asarray(p["planned"])
        assert planned.shape == (8, 3) and np.asarray(p["driven"]).shape == (8, 3)
        steps = car.deltas(np.concatenate([np.zeros((1, 3)), planned * [0.72, 0.72, 1]]))
        assert np.all(steps >= np.array(car.action_low) - 1e-6) and np.all(steps <= np.array(car.action_high) + 1e-6)
    replay = report["replay"]
    assert replay["trajectory"] == "bend_1" and replay["steps"] == FRAMES - 8 - 3
    for key in ("plot", "video"):
        assert (tmp_path / "out" / f"replay_bend_1.{'png' if key == 'plot' else 'mp4'}").stat().st_size > 1000


def test_a_straight_line_through_a_pose_ends_there():
    lines = StraightLines(Car(), 8)
    for end in ([9.6, 1.5, 0.4], [6.0, -2.0, -0.9], [-3.0, 0.5, 2.5]):
        assert np.allclose(lines.poses(lines.through(torch.tensor(end))[None])[0, -1].numpy(), end, atol=1e-5)


@pytest.mark.parametrize("mode", ["free", "nwm"])
def test_a_search_started_on_constant_velocity_with_no_spread_returns_it(tmp_path, dataset, mode):
    """No spread and nothing to refit: the plan is where --start context_velocity centres the search
    (free: the constant-velocity steps; nwm: the line to their last pose), whatever the model says."""
    index, model_dir = dataset
    config = small_config(tmp_path, index, model_dir, mode=mode, start="context_velocity", context_std=(0, 0, 0),
                          lines=StraightLineConfig(std=(0, 0, 0)), car=Car(init_std=(0, 0, 0)))
    report = evaluate(car_model(), config, progress=False)
    assert report["start"] == "context_velocity"
    for p in report["plans"]:
        model, constant = p["figures"]["model"], p["figures"]["constant_velocity"]
        assert math.isclose(model["final_pos"], constant["final_pos"], abs_tol=1e-4)
        assert math.isclose(model["final_yaw"], constant["final_yaw"], abs_tol=1e-4)
        assert mode == "nwm" or math.isclose(model["ate"], constant["ate"], abs_tol=1e-5)
    started = evaluate(car_model(), replace(config, start="prior"), progress=False)
    assert [p["planned"] for p in started["plans"]] != [p["planned"] for p in report["plans"]]


def test_nav_replay_is_seeded(tmp_path, dataset):
    index, model_dir = dataset
    model = car_model()
    first = evaluate(model, small_config(tmp_path, index, model_dir, limit=2, mode="free"), progress=False)
    second = evaluate(model, small_config(tmp_path, index, model_dir, limit=2, mode="free"), progress=False)
    assert first["table"][:1] != [] and [p["planned"] for p in first["plans"]] == [p["planned"] for p in second["plans"]]
    assert [r["ate_wu"] for r in first["table"]] == [r["ate_wu"] for r in second["table"]]
    # --seed reaches the search: another seed plans other paths (the baselines stay where they are).
    other = evaluate(model, small_config(tmp_path, index, model_dir, limit=2, mode="free", seed=1), progress=False)
    assert [p["planned"] for p in other["plans"]] != [p["planned"] for p in first["plans"]]
    assert other["table"][1] == first["table"][1]


def test_bad_input_gets_one_line_naming_the_flag(tmp_path, dataset):
    index, model_dir = dataset
    model = car_model()
    with pytest.raises(ValueError, match="--data is required"):
        evaluate(model, small_config(tmp_path, index, model_dir, data=""), progress=False)
    write_eval_index(tmp_path / "missing.pkl", [("nowhere", 3, 8, 8)])
    with pytest.raises(ValueError, match="--data .*no trajectory 'nowhere'"):
        evaluate(model, small_config(tmp_path, tmp_path / "missing.pkl", model_dir), progress=False)
    write_eval_index(tmp_path / "late.pkl", [("arc_0", 6, 8, 8)])
    with pytest.raises(ValueError, match="--index .*late.pkl: entry"):
        evaluate(model, small_config(tmp_path, tmp_path / "late.pkl", model_dir), progress=False)
    with pytest.raises(ValueError, match="--model: .*franka"):
        evaluate(franka_model(), small_config(tmp_path, index, model_dir), progress=False)
    with pytest.raises(ValueError, match="--model .*not a world model directory"):
        nav_replay.run(small_config(tmp_path, index, tmp_path / "nothing"))


def franka_model():
    torch.manual_seed(0)
    encoder = VisionTransformer(encoder_config("micro", "2.1"))
    return WorldModel(encoder, ACPredictor(ac_predictor_config("micro", 96, img_size=32)), 32, Franka()).eval()


def test_the_command_line_takes_the_documented_flags(tmp_path, dataset):
    import argparse

    index, model_dir = dataset
    parser = argparse.ArgumentParser()
    nav_replay.register(parser.add_subparsers(dest="command"))
    args, extra = parser.parse_known_args([
        "nav-replay", "--data", str(tmp_path / "data"), "--index", str(index), "--model", str(model_dir),
        "--json", str(tmp_path / "cli.json"), "--mode", "free", "--limit", "1", "--random-lines", "4",
        "--cem.samples", "8", "--cem.elites", "2", "--lines.mean", "[0.0, 0.0, 0.0]"])
    args.extra = extra
    assert args.func(args) == 0
    report = json.loads((tmp_path / "cli.json").read_text())
    assert report["mode"] == "free" and report["samples"] == 8 and len(report["plans"]) == 1


# ---------------------------------------------------------------------------- energy landscape

def test_spearman_matches_scipy_with_and_without_ties():
    from scipy.stats import spearmanr

    from vjepa_wm.evaluation.nav_landscape import spearman

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=50), rng.normal(size=50)
    tied = np.round(a, 0)
    for x, y in ((a, b), (a, a ** 3), (tied, b), (tied, np.round(b, 0))):
        assert spearman(x, y) == pytest.approx(spearmanr(x, y).correlation, abs=1e-12)
    assert spearman(np.ones(5), b[:5]) == 0.0


def test_landscape_figures_of_an_energy_that_knows_the_answer_and_of_its_opposite():
    from vjepa_wm.evaluation.nav_landscape import landscape_figures

    car = Car()
    truth = torch.tensor([[1.1, 0.0, 0.05]] * 8, dtype=torch.float64)
    driven_end = car.rollout(np.zeros(3), truth.numpy())[-1]
    rng = torch.Generator().manual_seed(0)
    lines = truth + torch.randn(40, 8, 3, generator=rng, dtype=torch.float64) * torch.tensor([0.3, 0.1, 0.05], dtype=torch.float64)
    ends = np.array([car.rollout(np.zeros(3), a)[-1] for a in lines.numpy()])
    line_errors = np.linalg.norm(ends[:, :2] - driven_end[:2], axis=1)

    def knowing(actions):  # the final position error against the driven path: the ideal energy
        finals = np.array([car.rollout(np.zeros(3), a)[-1] for a in actions.double().numpy()])
        return torch.as_tensor(np.linalg.norm(finals[:, :2] - driven_end[:2], axis=1))

    constant = torch.tensor([[1.1, 0.0, 0.0]] * 8, dtype=torch.float64)
    good = landscape_figures(knowing, lines, line_errors, truth, constant)
    assert good == {"energy_ate_spearman": pytest.approx(1.0), "lines_below_driven": 0.0, "driven_below_constant_velocity": 1.0}
    bad = landscape_figures(lambda actions: -knowing(actions), lines, line_errors, truth, constant)
    assert bad["energy_ate_spearman"] == pytest.approx(-1.0) and bad["lines_below_driven"] == 1.0
    assert bad["driven_below_constant_velocity"] == 0.0


def test_the_encoder_ranking_follows_the_distance_when_the_latent_does():
    """A stand-in encoder whose latent is a frame's brightness: frames brighter with distance from a
    dark goal rank as their distances do; a goal as bright as the farthest frame reverses the order."""
    from vjepa_wm.evaluation.nav_landscape import encoder_ranking

    class Brightness:
        tokens_per_frame = 2

        def encode_images(self, images):
            mean = torch.as_tensor(np.asarray(images), dtype=torch.float32).mean((1, 2, 3))
            return mean.repeat_interleave(2)[None, :, None].expand(1, -1, 4)

    distances = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    frames = np.stack([np.full((4, 4, 3), 20 * d, dtype=np.uint8) for d in distances])
    assert encoder_ranking(Brightness(), frames, np.zeros((4, 4, 3), np.uint8), distances) == pytest.approx(1.0)
    assert encoder_ranking(Brightness(), frames, np.full((4, 4, 3), 100, np.uint8), distances) == pytest.approx(-1.0)


def test_nav_replay_landscape_is_reported_and_leaves_the_table_as_it_was(tmp_path, dataset, capsys):
    index, model_dir = dataset
    model = car_model()
    plain = evaluate(model, small_config(tmp_path, index, model_dir), progress=False)
    assert nav_replay.run(small_config(tmp_path, index, model_dir, landscape=True)) == 0
    assert "energy_ate_spearman" in capsys.readouterr().out
    report = json.loads((tmp_path / "nav.json").read_text())
    def untimed(table):
        return [{k: v for k, v in row.items() if k != "seconds_per_plan"} for row in table]

    assert untimed(report["table"]) == untimed(json.loads(json.dumps(plain["table"])))  # same plans, same baselines
    landscape = report["landscape"]
    assert landscape["plans"] == 3 and -1 <= landscape["energy_ate_spearman"] <= 1
    assert 0 <= landscape["lines_below_driven"] <= 1 and landscape["driven_below_constant_velocity"] in (0, 1 / 3, 2 / 3, 1)
    assert -1 <= landscape["encoder_distance_spearman"] <= 1 and landscape["encoder_distance_spearman"] != 0


def test_nav_replay_defaults_to_the_bundled_model_and_says_when_there_is_none(tmp_path, dataset, monkeypatch, capsys):
    from vjepa_wm.cli import main

    index, model_dir = dataset
    flags = ["nav-replay", "--data", str(tmp_path / "data"), "--index", str(index), "--limit", "1", "--random-lines", "4",
             "--cem.samples", "4", "--cem.elites", "2", "--json", str(tmp_path / "default.json")]
    monkeypatch.setattr("vjepa_wm.sim_model.BUNDLED_NAV_MODEL", model_dir)  # stands in for an installed bundle
    assert main(flags) == 0
    assert json.loads((tmp_path / "default.json").read_text())["table"][0]["plans"] == 1
    monkeypatch.setattr("vjepa_wm.sim_model.BUNDLED_NAV_MODEL", tmp_path / "not_installed")
    assert main(flags) == 2
    assert "--model is required (this install has no bundled navigation model)" in capsys.readouterr().err
