#!/usr/bin/env bash
# Build ROS 2 interface packages (.msg/.srv/.action) with CMake and install them into a venv that
# holds the ROS 2 pip wheels, so `import franka_msgs` works there with no environment set up
# (the wheels' bootstrapper puts VENV/lib on the library path at interpreter start).
#
# Usage: build.sh VENV [PACKAGE_DIR...]   (default: franka_msgs and vjepa_wm_interfaces, in that order)
# The build log stays quiet unless a step fails, then its tail is printed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=$(cd "${1:?usage: build.sh VENV [PACKAGE_DIR...]}" && pwd)
shift
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=("$here/franka_msgs" "$here/vjepa_wm_interfaces")

bash "$here/fix_cmake_exports.sh" "$venv"
export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" PATH="$venv/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() {  # step LOG COMMAND...: run quietly, show the log's tail if it fails
  local log=$1
  shift
  "$@" >>"$log" 2>&1 || { tail -n 40 "$log" >&2; echo "build.sh: failed: $*" >&2; exit 1; }
}

for package in "${packages[@]}"; do
  name=$(basename "$package")
  log="$work/$name.log"
  start=$SECONDS
  step "$log" cmake -S "$package" -B "$work/$name" -DCMAKE_INSTALL_PREFIX="$venv" -DBUILD_TESTING=OFF \
    -DPython3_EXECUTABLE="$venv/bin/python"
  step "$log" cmake --build "$work/$name" -j"$(nproc)"
  step "$log" cmake --install "$work/$name"
  echo "build.sh: $name installed into $venv ($((SECONDS - start)) s)"
done
