#!/usr/bin/env bash
# build.sh - configure and build mtpbench into build/ (CUDA backend too when nvcc is found).
# Extra arguments go to cmake's configure step, e.g. scripts/build.sh -DMTP_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
"$(dirname "$0")/install-deps.sh"
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
