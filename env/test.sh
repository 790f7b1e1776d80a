#!/usr/bin/env bash
# The README's test command: installs missing Debian packages, builds, and
# runs the whole ctest suite. CI (.ci/run) calls exactly this script.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$top/build}

"$top/env/install-deps.sh"
"$top/env/build.sh"
cd "$build_dir"
ctest --output-on-failure --timeout 900 "$@"
