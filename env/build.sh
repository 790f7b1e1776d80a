#!/usr/bin/env bash
# Configures and builds dmnsp in $BUILD_DIR (default: build/ at the top of
# the checkout). Extra arguments go to CMake's configure step, e.g.
# env/build.sh -DDMNSP_SANITIZE=ON.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$top/build}
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S "$top" -B "$build_dir" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" "$@"
cmake --build "$build_dir" -j "$jobs"
