#!/usr/bin/env bash
# Incremental in-place build for development: afterwards `PYTHONPATH=python python -m pytest`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/dev/build.ninja ]; then
  cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DFASTNN_INPLACE=ON \
    -Dpybind11_DIR="$(python3 -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
    -DPython_EXECUTABLE="$(command -v python3)" >/dev/null
fi
cmake --build build/dev -j "${JOBS:-2}"
