"""The whole sim pipeline in miniature, through the command line: collect-sim -> pretrain ->
train-ac -> eval-sim (2 episodes, a few training steps, 2 planning steps)."""
from __future__ import annotations

import json

from vjepa_wm.cli import main


def test_collect_pretrain_train_ac_eval_sim(tmp_path):
    data, pretrained, trained = tmp_path / "sim", tmp_path / "pretrain", tmp_path / "ac"
    assert main(["collect-sim", "--out", str(data), "--episodes", "2", "--image-size", "64", "--no-progress",
                 "--actions_per_episode=8"]) == 0
    episodes = f"--data.episodes=[{{source: droid_raw, path: '{data}'}}]"
    assert main(["pretrain", "--config", "tiny_sim", "--model.preset=micro", "--model.predictor_depth=1",
                 "--model.predictor_dim=48", "--model.predictor_heads=2", episodes, "--data.num_workers=0",
                 "--phases=[{steps: 3, frames: 4, crop: 32, batch_size: 2, image_batch_size: 2}]",
                 "--optim.warmup_steps=1", "--optim.cooldown_steps=1", "--loss.context_lambda_start=0",
                 "--loss.context_lambda_end=1", f"--run.out_dir={pretrained}", "--run.tensorboard=false",
                 "--run.progress=false"]) == 0
    assert main(["train-ac", "--config", "sim", f"--model.encoder={pretrained / 'encoder'}",
                 "--model.predictor=micro", "--model.img_size=32", f"--data.path={data}", "--data.cache_dir=",
                 "--data.frames_per_clip=4", "--data.workers=0", "--data.val_fraction=0", f"--run.out_dir={trained}",
                 "--run.steps=4", "--run.batch_size=2", "--optim.warmup_steps=1", "--optim.decay_steps=1",
                 "--run.tensorboard=false"]) == 0
    report_path = tmp_path / "eval.json"
    assert main(["eval-sim", "--task", "reach", "--episodes", "1", "--seed", "5", "--model", str(trained / "world_model"),
                 "--max-steps", "2", "--image-size", "64", "--cem.samples", "8", "--cem.iterations", "2", "--cem.elites", "4",
                 "--out", str(tmp_path / "videos"), "--videos", "1", "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["task"] == "reach" and report["episodes"] == 1
    assert 0.0 <= report["success_rate"] <= 1.0 and report["seconds_per_action"] > 0
    assert report["results"][0]["steps"] == 2
    assert (tmp_path / "videos" / "reach_seed5.mp4").stat().st_size > 0
    assert (tmp_path / "videos" / "reach_seed5_energy.png").stat().st_size > 0
