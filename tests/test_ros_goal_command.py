"""`vjepa-wm ros-goal` over real DDS on localhost, against the scripted PlanToGoal server of
`ros_helpers` in its own process (it echoes what the goal said: energies from the images' bytes,
actions from the pins), so every field the command sends is checked from the other side."""
from __future__ import annotations

import json

import cv2
import numpy as np
from ros_helpers import DOMAIN_ID, Peer

from vjepa_wm.cli import main


def write_images(folder, rng) -> tuple[list[str], list[float]]:
    """Two goal images as PNG files, and the mean byte / 255 the server derives its energies from."""
    paths, means = [], []
    for index, (height, width) in enumerate(((16, 20), (12, 8))):
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        path = folder / f"goal{index}.png"
        assert cv2.imwrite(str(path), rgb[..., ::-1])
        paths.append(str(path))
        means.append(float(rgb.mean()) / 255)
    return paths, means


def test_ros_goal_sends_images_budgets_and_pins_and_reports_every_step(tmp_path, capsys):
    paths, means = write_images(tmp_path, np.random.default_rng(5))
    common = ["--action-name", "plan_to_goal", "--domain-id", str(DOMAIN_ID), "--wait-s", "20"]
    peer = Peer("plan-server")
    try:
        peer.expect("ready")
        status = main(["ros-goal", *paths, *common, "--max-steps-per-goal", "[2, 3]", "--pin", '["1:dgripper=0.75"]',
                       "--json", str(tmp_path / "plan.json")])
        out = capsys.readouterr().out
        assert status == 0, out
        record = json.loads((tmp_path / "plan.json").read_text())
        assert (record["outcome"], record["steps"], record["goal_index"]) == ("BUDGET", 5, 1)
        steps = record["feedback"]
        assert [s["step"] for s in steps] == [0, 1, 2, 3, 4]
        assert [s["goal_index"] for s in steps] == [0, 0, 1, 1, 1]
        energies = [means[goal] / step for goal, step in ((0, 1), (0, 2), (1, 3), (1, 4), (1, 5))]
        assert [s["observed_energy"] for s in steps] == energies  # the images arrived byte for byte
        assert [s["action"][6] for s in steps] == [0.0, 0.0, 0.75, 0.75, 0.75]  # the pin reached goal 1 only
        assert record["final_energy"] == energies[-1]
        assert out.count("\nstep ") + out.startswith("step ") == 5
        assert f"BUDGET after 5 step(s) (goal 1, final energy {energies[-1]:.4f}): step budget" in out

        # The scripted server rejects a goal without a budget for each image: said in one line, status 2.
        assert main(["ros-goal", *paths, *common]) == 2
        assert "the planner rejected the goal" in capsys.readouterr().err
    finally:
        assert peer.close() == 0


def test_ros_goal_refuses_bad_arguments_before_it_talks_to_anyone(tmp_path, capsys):
    paths, _ = write_images(tmp_path, np.random.default_rng(6))
    cases = [
        ([], "needs goal images or --goal-topic"),
        ([paths[0], "--goal-topic", "/franka_sim/goal_image"], "needs goal images or --goal-topic"),
        ([*paths, "--max-steps-per-goal", "[3]"], "max_steps_per_goal has 1 entries for 2 goal images"),
        ([paths[0], "--pin", '["0:dwrist=0.1"]'], "pin '0:dwrist=0.1': expected GOAL:DIM=VALUE"),
        ([paths[0], "--pin", '["1:dgripper=0.1"]'], "GOAL 0..0"),
        ([str(tmp_path / "missing.png")], "missing.png: not a readable image"),
    ]
    for arguments, message in cases:
        assert main(["ros-goal", *arguments, "--wait-s", "1"]) == 2, arguments
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
