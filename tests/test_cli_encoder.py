"""`vjepa-wm encode` / `convert` / `bench encoder` end to end, and one-line user errors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from safetensors.torch import load_file

from helpers import ROOT
from vjepa_wm.cli import main
from vjepa_wm.datasets.moving_shapes import moving_shapes_clip
from vjepa_wm.datasets.video_io import write_mp4
from vjepa_wm.world_model.checkpoints import load_encoder, save_encoder
from vjepa_wm.world_model.vit import VisionTransformer, encoder_config


def test_encode_video_writes_features_and_pca(tmp_path, capsys):
    clip = write_mp4(tmp_path / "clip.mp4", moving_shapes_clip(num_frames=8, size=64, seed=1), fps=4)
    save_encoder(VisionTransformer(encoder_config("micro", "2.1")), tmp_path / "enc")
    code = main(["encode", str(clip), "--model", str(tmp_path / "enc"), "--frames", "4", "--crop", "32",
                 "--out", str(tmp_path / "f.npy"), "--pca", str(tmp_path / "pca.png")])
    assert code == 0
    features = np.load(tmp_path / "f.npy")
    assert features.shape == (2, 2 * 2 * 2, 96)  # 2 clips of 4 frames -> 2 tubelets x 2 x 2 patches
    assert (tmp_path / "pca.png").stat().st_size > 1000


def test_encode_images_one_at_a_time(tmp_path):
    import cv2

    paths = []
    for i in range(3):
        path = tmp_path / f"im{i}.png"
        cv2.imwrite(str(path), moving_shapes_clip(num_frames=1, size=48, seed=i)[0])
        paths.append(str(path))
    code = main(["encode", *paths, "--random", "micro", "--crop", "32", "--out", str(tmp_path / "f.safetensors")])
    assert code == 0
    stored = load_file(str(tmp_path / "f.safetensors"))
    assert stored["features"].shape == (3, 4, 96) and stored["grid"].tolist() == [1, 2, 2]


def test_convert_between_formats(tmp_path):
    model = VisionTransformer(encoder_config("micro", "2", img_size=32)).eval()
    save_encoder(model, tmp_path / "ours")
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "hf"), "--to", "hf"]) == 0
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "x.pt"), "--to", "official"]) == 0
    assert main(["convert", str(tmp_path / "x.pt"), str(tmp_path / "back")]) == 0
    import torch

    video = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        assert torch.allclose(load_encoder(tmp_path / "back")(video), model(video), atol=1e-6)


def test_user_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "junk.pt").write_text("junk")
    cases = [
        ["convert", str(tmp_path / "junk.pt"), str(tmp_path / "out")],
        ["convert", str(tmp_path / "nothing.pt"), str(tmp_path / "out")],
        ["encode", str(tmp_path / "missing.mp4"), "--random", "micro", "--out", str(tmp_path / "f.npy")],
        ["encode", str(tmp_path / "x.png"), "--out", str(tmp_path / "f.npy")],
    ]
    for argv in cases:
        result = subprocess.run([sys.executable, "-m", "vjepa_wm", *argv], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("note:")]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert lines[0].startswith(f"vjepa-wm {argv[0]}: error:")


def test_bench_encoder_prints_a_table_and_writes_json(tmp_path, capsys):
    code = main(["bench", "encoder", "--presets", "micro", "--frames", "2", "--size", "32", "--repeats", "1",
                 "--device", "cpu", "--json", str(tmp_path / "b.json")])
    assert code == 0
    records = json.loads((tmp_path / "b.json").read_text())
    assert records[0]["preset"] == "micro" and records[0]["frames_per_s"] > 0
    assert 0 < records[0]["matmul_fraction"] < 2
    assert "matmul_fraction" in capsys.readouterr().out
