#!/usr/bin/env bash
# setup_transformers_env.sh - a separate virtual environment (.venv-hf) with a
# current PyTorch and Hugging Face transformers, for training/compare_transformers.py
# only. It is large (PyTorch's wheels bring their CUDA libraries, several GB),
# which is why the project's main .venv uses Debian's small CPU-only torch.
#   training/setup_transformers_env.sh
#   .venv-hf/bin/python training/compare_transformers.py --dir tests/fixtures/v3-f32
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-hf/bin/python ] || /usr/bin/python3 -m venv .venv-hf
.venv-hf/bin/pip install -q torch transformers safetensors numpy
.venv-hf/bin/python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
