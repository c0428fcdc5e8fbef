#!/usr/bin/env bash
# setup-python.sh - the Python environment for training/, datasets/ and analysis/:
# Debian's CPU-only PyTorch (python3-torch) with OpenBLAS, plus a virtual
# environment (.venv, with system site-packages so it sees that torch) holding
# the packages of training/requirements.txt. The C build and tests need none of it.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
need=()
for p in python3-torch python3-venv libopenblas0-pthread; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/pip install -q -r training/requirements.txt
.venv/bin/python -c "import torch, tokenizers, safetensors, msgpack; print('python env ready: torch', torch.__version__)"
