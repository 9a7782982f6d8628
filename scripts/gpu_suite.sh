#!/usr/bin/env bash
# The GPU suite (`vjepa-wm bench gpu`) on a bare GPU machine, from this repository alone.
#
#   bash scripts/gpu_suite.sh                                   # on the GPU machine, from anywhere
#   OUT=/tmp/gpu GPU_SUITE_ARGS="--dry-run" bash scripts/gpu_suite.sh   # the same steps, tiny sizes, any CPU
#
# Writes $OUT/gpu_suite.json (environment + one row per figure) and $OUT/gpu_suite.md (the README
# rows), rewritten after every row, and prints the table last. Everything, setting up included,
# runs under one hard timeout of 8 minutes; the suite's own budget ends 45 s before it, so the
# last row can finish and the files are complete even if it overruns.
#
# Set-up, with nothing installed by hand:
#   1. torch: the interpreter's own if it is a CUDA build (its version goes into the JSON: the
#      lent machine's torch may differ from our pin); otherwise, given network, the CUDA build of
#      the pinned version (constraints.txt) from TORCH_INDEX_URL into a venv beside the
#      interpreter's packages. A dry run accepts a CPU torch.
#   2. numpy, safetensors, PyYAML, h5py, OpenCV, tqdm, matplotlib: the interpreter's own; any that
#      is missing is installed into that venv at its constraints.txt version (network needed).
#   3. our code: not installed. A folder of links lays the rooms out as `vjepa_wm.*`, the way
#      setup.py's package_dir maps them, and goes first on PYTHONPATH; the suite runs through
#      `python -m vjepa_wm.benchmarks.gpu_main`, which never imports PyBullet, gymnasium,
#      TensorBoard or rosbags (`vjepa-wm` itself imports every command, the simulators' included).
#
# Environment: OUT (default: ./gpu-suite-out), PYTHON (default: python3), TORCH_INDEX_URL
# (default: the PyTorch CUDA 13.0 wheel index), GPU_SUITE_ARGS (more suite options, e.g.
# "--rows plan_published,plan_lean" or "--dry-run"). Exit status: the suite's (1: a row failed).
set -euo pipefail

HARD_S=480
started=$SECONDS
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${OUT:-$PWD/gpu-suite-out}
python=$(command -v "${PYTHON:-python3}") || { echo "gpu_suite: error: no ${PYTHON:-python3} here" >&2; exit 2; }
torch_index=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cu130}
extra=${GPU_SUITE_ARGS:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)  # the suite runs from another folder
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-suite.XXXXXX")
trap 'rm -rf "$work"' EXIT

pinned() { sed -n "s/^$1==\([^ ;]*\).*/\1/p" "$repo/constraints.txt"; }

venv_python() {  # a venv on top of the interpreter's packages, made once
  if [[ ! -x $work/venv/bin/python ]]; then
    "$python" -m venv --system-site-packages "$work/venv"
  fi
  echo "$work/venv/bin/python"
}

if [[ " $extra " == *" --dry-run "* ]]; then
  echo "gpu_suite: dry run with $python's torch (no CUDA needed)"
elif found=$("$python" -c 'import sys, torch; print(torch.__version__); sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null); then
  echo "gpu_suite: torch $found with CUDA in $python"
else
  version=$(pinned torch)
  echo "gpu_suite: no CUDA torch in $python; installing torch==$version from $torch_index"
  python=$(venv_python)
  if ! timeout 240 "$python" -m pip install -q "torch==$version" --index-url "$torch_index"; then
    echo "gpu_suite: error: no CUDA torch here and torch==$version could not be installed from $torch_index" >&2
    exit 2
  fi
fi

# import name -> distribution; found without importing (imports cost seconds of the budget)
read -r -a missing <<< "$("$python" - <<'PY'
import importlib.util
wanted = {"numpy": "numpy", "safetensors": "safetensors", "yaml": "PyYAML", "h5py": "h5py",
          "cv2": "opencv-python-headless", "tqdm": "tqdm", "matplotlib": "matplotlib"}
print(" ".join(dist for module, dist in wanted.items() if importlib.util.find_spec(module) is None))
PY
)"
for i in "${!missing[@]}"; do
  missing[i]="${missing[i]}==$(pinned "${missing[i]}")"
done
if (( ${#missing[@]} )); then
  echo "gpu_suite: installing ${missing[*]}"
  python=$(venv_python)
  if ! timeout 120 "$python" -m pip install -q "${missing[@]}"; then
    echo "gpu_suite: error: missing ${missing[*]} and no way to install them" >&2
    exit 2
  fi
fi

site=$work/site
mkdir -p "$site/vjepa_wm"
ln -s "$repo"/vjepa_wm/* "$site/vjepa_wm/"
rooms=$(sed -n 's/^ROOMS = \[\(.*\)\]/\1/p' "$repo/setup.py" | tr -d '",')
for room in $rooms; do
  ln -s "$repo/$room" "$site/vjepa_wm/$room"
done

left=$((HARD_S - (SECONDS - started)))
echo "gpu_suite: set up in $((SECONDS - started)) s; the suite gets $((left - 45)) s of the $left s left"
cd "$work"  # not the repository root, whose vjepa_wm/ (without the rooms) would shadow the linked one
status=0
# shellcheck disable=SC2086  # GPU_SUITE_ARGS is a list of options
PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" timeout --kill-after=10 "${left}s" \
  "$python" -m vjepa_wm.benchmarks.gpu_main --budget-s "$((left - 45))" \
  --json "$out/gpu_suite.json" --markdown "$out/gpu_suite.md" $extra || status=$?
if (( status == 124 || status == 137 )); then
  echo "gpu_suite: the hard timeout stopped the suite; the files hold every row finished before it"
fi
echo
if [[ -f $out/gpu_suite.md ]]; then
  cat "$out/gpu_suite.md"
else
  echo "gpu_suite: no rows were written (status $status)"
fi
exit "$status"
