"""One config system: every subcommand's options and --help come from its typed dataclass config."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from vjepa_wm.cli import build_parser, main
from vjepa_wm.commands.bench import BENCHMARKS
from vjepa_wm.config_cli import field_docs, leaves
from vjepa_wm.world_model.ac_training.config import ACTrainConfig


def config_commands():
    """(argv prefix, config class) of every subcommand."""
    parser = build_parser()
    found = [(["bench", name], config_class) for name, (config_class, _) in BENCHMARKS.items()]
    actions = [a for a in parser._actions if a.dest == "command"][0]
    for name, sub in actions.choices.items():
        command = sub.get_default("config_command")
        if command is not None:
            found.append(([name], command.config_class))
    return found


@pytest.mark.parametrize("argv,config_class", config_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_help_lists_every_field_with_its_default(argv, config_class, capsys):
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for leaf in leaves(config_class):
        if leaf.positional:
            assert leaf.dotted.upper() in text
        else:
            assert f"--{leaf.dotted.replace('_', '-')}" in text, leaf.dotted
    assert "(default:" in text and "--config" in text and "--print-config" in text


def test_every_subcommand_is_a_config_command():
    names = {" ".join(argv) for argv, _ in config_commands()}
    assert {"demo", "encode", "convert", "collect-sim", "pretrain", "plan", "train-ac", "eval-sim", "collect-drive", "nav-process"} <= names
    assert {f"bench {name}" for name in BENCHMARKS} <= names


def test_train_ac_help_documents_fields_from_their_comments(capsys):
    with pytest.raises(SystemExit):
        main(["train-ac", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--optim.lr FLOAT peak learning rate (warmup-stable-decay) (default: 0.000425)" in text
    assert "--data.format {raw,rlds,lerobot,nwm}" in text and "shipped config: droid_vitg, nav_sim, sim, sim_stage2" in text
    assert field_docs(type(ACTrainConfig().run))["steps"] == "optimisation steps in all"


def test_shipped_configs_are_found_by_name_and_flags_override_them(capsys):
    assert main(["train-ac", "--config", "sim", "--print-config", "--run.steps=7", "--data.row-stride", "2"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["predictor"] == "sim" and printed["run"]["steps"] == 7 and printed["data"]["row_stride"] == 2
    assert main(["train-ac", "--config", "nope"]) == 2
    assert "nope: no such config file, nor a shipped config of that name (shipped: droid_vitg, nav_sim, sim, sim_stage2)" in capsys.readouterr().err


def test_booleans_take_no_and_text_fields_keep_what_was_typed(capsys):
    assert main(["eval-sim", "--print-config", "--no-low-poly", "--cem.bf16=false", "--model", "007", "--max-steps", "3"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["low_poly"] is False and printed["cem"]["bf16"] is False
    assert printed["model"] == "007" and printed["max_steps"] == 3  # text stays text; numbers are numbers
    assert printed["cem"]["samples"] == 64 and printed["cem"]["workspace"] is not None  # the sim preset, kept


def test_a_derived_default_is_derived_from_the_final_settings(capsys):
    # SimEvalConfig derives the step budget from the task: it must follow --task, not freeze reach's 20.
    assert main(["eval-sim", "--print-config", "--task", "pick_and_place"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["max_steps"] == 30


@pytest.mark.parametrize("argv,message", [
    (["eval-sim", "--cem.sample=3"], "unknown config key cem.sample (known: "),
    (["eval-sim", "--cem.samples=many"], "cem.samples: expected an integer, got 'many'"),
    (["eval-sim", "--gripper", "magic"], "gripper: 'magic' is not one of 'commanded', 'search'"),
    (["plan", "--franka.max_step=-1", "--state", "0,0,0,0,0,0,0"], "franka.max_step must be a positive finite number"),
    (["bench", "plan", "--rope-folding", "sometimes"], "rope_folding: 'sometimes' is not one of"),
])
def test_bad_settings_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_leaves_flatten_nested_sections_with_preset_defaults():
    from vjepa_wm.evaluation.sim import SimEvalConfig

    by_name = {leaf.dotted: leaf for leaf in leaves(SimEvalConfig)}
    assert by_name["cem.samples"].default == 64 and by_name["cem.iterations"].default == 5
    assert by_name["franka.max_step"].default == 0.05 and by_name["franka.max_step"].doc.startswith("metres per step")
    assert all(not dataclasses.is_dataclass(leaf.annotation) for leaf in by_name.values())
