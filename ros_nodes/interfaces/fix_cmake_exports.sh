#!/usr/bin/env bash
# Make a venv's ROS 2 message wheels usable for building interface packages against them.
#
# The wheels' exported CMake targets (share/*/cmake/export_*__rosidl_generator_pyExport.cmake)
# name the Python and numpy headers of the image the wheels were built in, /opt/python/cp3XX-...,
# which no other machine has, so CMake refuses any package that depends on them. This points
# those two paths at the venv's own interpreter. It is idempotent; pip restores the wrong paths
# whenever it (re)installs a message wheel, so run it again after that (build.sh always does).
#
# Usage: fix_cmake_exports.sh VENV
set -euo pipefail
venv=${1:?usage: fix_cmake_exports.sh VENV}
python_include=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
numpy_include=$("$venv/bin/python" -c "import numpy; print(numpy.get_include())")
if [ ! -f "$python_include/Python.h" ]; then
  echo "fix_cmake_exports.sh: no Python.h in $python_include; install the interpreter's headers (Debian: python3.11-dev)" >&2
  exit 1
fi
shopt -s nullglob
exports=("$venv"/share/*/cmake/export_*__rosidl_generator_pyExport.cmake)
if [ ${#exports[@]} -eq 0 ]; then
  echo "fix_cmake_exports.sh: no ROS 2 message wheels in $venv (share/*/cmake has no generator exports)" >&2
  exit 1
fi
sed -i -E \
  -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$python_include#g" \
  -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/(_core|core)/include#$numpy_include#g" \
  "${exports[@]}"
