"""`vjepa-wm pretrain` and `vjepa-wm bench pretrain`: shipped configs, overrides, one-line errors."""
from __future__ import annotations

import json

import pytest
import yaml

from helpers import SHIPPED_CONFIGS
from vjepa_wm.cli import main
from vjepa_wm.world_model.configuration import load_config
from vjepa_wm.world_model.pretraining.config import PretrainConfig
from vjepa_wm.world_model.pretraining.masks import MaskSpec

CONFIGS = SHIPPED_CONFIGS / "pretrain"


@pytest.mark.parametrize("name", ["tiny_sim.yaml", "vitl16.yaml", "vitg16.yaml"])
def test_shipped_configs_load_and_validate(name):
    config = load_config(PretrainConfig, CONFIGS / name)
    config.validate(world_size=8 if name != "tiny_sim.yaml" else 1)
    assert config.model.version == "2.1"
    assert config.optim.cooldown_steps == config.phases[-1].steps
    assert all(isinstance(spec, MaskSpec) for spec in config.masks.video + config.masks.image)
    assert [s.num_blocks for s in config.masks.video] == [8, 2] and config.masks.image[0].num_blocks == 10
    if name != "tiny_sim.yaml":  # the published recipe
        assert config.phases[0].frames == 16 and config.phases[-1].frames == 64 and config.phases[0].crop == 256
        assert (config.optim.lr, config.optim.weight_decay, config.optim.ema) == (6e-4, 0.04, (0.99925, 0.99925))
        assert (config.loss.context_lambda, config.loss.context_lambda_start, config.loss.context_lambda_end) == (0.5, 15000, 30000)
        assert config.model.activation_checkpointing and config.model.predictor_depth == 24


def test_print_config_applies_overrides(capsys):
    code = main(["pretrain", "--config", str(CONFIGS / "tiny_sim.yaml"), "--print-config", "--optim.lr=3e-4", "--run.seed", "7"])
    assert code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["lr"] == 3e-4 and printed["run"]["seed"] == 7 and printed["model"]["preset"] == "tiny"


@pytest.mark.parametrize("args,message", [
    (["--optim.lrr=1"], "unknown config key optim.lrr"),
    (["--optim.lr=fast"], "optim.lr: expected a number"),
    (["--phases=[{steps: 5, batch_size: 3}]"], "warmup (200) + cooldown (200) steps must fit in 5 steps"),
    (["--optim.warmup_steps=0", "--optim.cooldown_steps=0", "--data.episodes=[]", f"--data.image_dirs=[{CONFIGS}]",
      "--data.video_dirs=[/nonexistent/x]"],
     "x: no such data folder"),
    (["--data.episodes=[]"], "no data.video_dirs"),
    (["--data.episodes=[{source: droid_raw, path: /nonexistent/e}]"],
     "/nonexistent/e: no such episode folder"),
])
def test_bad_settings_give_one_line_errors(capsys, tmp_path, args, message):
    code = main(["pretrain", "--config", str(CONFIGS / "tiny_sim.yaml"), f"--run.out_dir={tmp_path}", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("vjepa-wm pretrain: error:")
    assert message in err


def test_missing_config_file(capsys):
    assert main(["pretrain", "--config", "/nonexistent/cfg.yaml"]) == 2
    assert "no such config file" in capsys.readouterr().err


def test_bench_pretrain_writes_the_table_as_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "pretrain", "--presets", "tiny", "--frames", "2", "--size", "32", "--batch", "2",
                 "--repeats", "1", "--device", "cpu", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "clips_per_s" in table and "matmul_fraction" in table
    record = json.loads(out.read_text())[0]
    assert record["preset"] == "tiny" and record["batch"] == 2 and record["clips_per_s"] > 0
    assert 0 < record["matmul_fraction"] < 5 and record["peak_gib"] is None
