#!/usr/bin/env bash
# Builds the OpenNMT-py 3.5.1 environment (PyTorch on CPU) that benchmarks/speed.py runs as its
# `opennmt` stack, in a venv of its own so that biseq's .venv is not touched.
#   benchmarks/onmt_setup.sh [VENV]      (default ../onmt-venv beside the checkout: where speed.py looks)
# TORCH_SPEC (default torch==2.13.0) names the torch to install: it must be a CPU build. Here the
# CPU wheel lies in pip's local wheel folder; elsewhere a bare `pip install torch` brings a
# multi-GB CUDA build, so point pip at PyTorch's CPU wheels instead.
# OpenNMT-py 3.5.1 pins torch<2.3 (no wheel for this Python/torch here), so it is installed with
# --no-deps and its declared runtime requirements, less torch, are installed by hand. Every one is
# imported when onmt_train / onmt_translate start (OpenNMT imports all its transforms). torch >= 2.6
# loads checkpoints weights-only, which OpenNMT 3.5's checkpoints fail; benchmarks/onmt_runner.py
# restores the old default for the checkpoint it has just trained.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-../onmt-venv}
torch_spec=${TORCH_SPEC:-torch==2.13.0}

python3 -m venv "$venv"
"$venv/bin/pip" install "$torch_spec"
"$venv/bin/pip" install --no-deps OpenNMT-py==3.5.1
"$venv/bin/pip" install configargparse 'ctranslate2>=4,<5' 'tensorboard>=2.3' flask waitress \
  'pyonmttok>=1.37,<2' pyyaml sacrebleu rapidfuzz pyahocorasick fasttext-wheel spacy six numpy

"$venv/bin/python" - <<'EOF'
import importlib.metadata as m

import torch

import onmt.bin.train  # noqa: F401  (imports every transform: fails on a missing requirement)
import onmt.bin.translate  # noqa: F401

assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build: install a CPU one (TORCH_SPEC)"
print(f"OpenNMT-py {m.version('OpenNMT-py')}, torch {torch.__version__}: ready")
EOF
echo "speed.py looks at ../onmt-venv beside the checkout; elsewhere give --onmt-python $(cd "$venv" && pwd)/bin/python (or ONMT_PYTHON)"
