"""`vjepa-wm pretrain`: V-JEPA 2 / 2.1 self-supervised pretraining.

Pretrain a V-JEPA 2.1 (or 2) encoder and predictor on folders of videos / images and on episode
datasets (``data.episodes: [{source: droid_raw, path: data/sim}]``). Settings come from --config
(a YAML file or a shipped config: tiny_sim, vitl16, vitg16), then from the options below, e.g.
  vjepa-wm pretrain --config tiny_sim --data.video_dirs='[data/my_videos]' --run.out_dir=runs/a
Runs under torchrun for several processes (NCCL on GPUs, gloo on CPUs); batch sizes are global.
A run resumes from the latest checkpoint in run.out_dir (run.resume=auto); at the end the target
encoder and the predictor are written to OUT/encoder and OUT/predictor in vjepa_wm format.
run.out_dir belongs to one run (run.json records its settings and data): a folder of another run,
or a foreign file where the run must write, is refused with one line; to resume a run on purpose
with changed settings, list them in run.resume_changed (e.g. '[optim.lr]').
"""
from __future__ import annotations

from vjepa_wm.config_cli import ConfigCommand, add_config_command
from vjepa_wm.world_model.pretraining.config import PretrainConfig


def run(config: PretrainConfig) -> int:
    from vjepa_wm.clip_sources import CLIP_SOURCES
    from vjepa_wm.world_model.pretraining.trainer import pretrain

    result = pretrain(config, CLIP_SOURCES)
    if result.encoder_dir is not None:  # the main process reports
        last = f"{result.history[-1][1]:.4f}" if result.history else "-"
        print(f"pretrained {result.steps} steps (last loss {last}, {result.skipped} unreadable samples skipped, "
              f"{result.collapse_warnings} collapse warnings)\n"
              f"encoder -> {result.encoder_dir}\npredictor -> {result.predictor_dir}\ncheckpoint -> {result.checkpoint}")
    return 0


def register(subparsers) -> None:
    add_config_command(subparsers, "pretrain", ConfigCommand(PretrainConfig, run, shipped="pretrain"),
                       help="self-supervised V-JEPA pretraining", description=__doc__)
