#!/usr/bin/env bash
# Wheels the GPU machine lacks, for tools/gpu_check.sh (run here, where pip reaches PyPI; the GPU machine reaches nothing).
# Its image has torch with CUDA, Triton, pytest, hypothesis, pandas, safetensors, jaxtyping and transformers; it lacks
# beartype (the tests' shape checks) and sparsify with its own needs. SAELens and transformer-lens are left out (dozens of
# pinned dependencies): their GPU rows and the GPU harvest test are skipped there. Writes .whl/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.whl/' >> .git/info/exclude; }
PY=${PYTHON:-python3}
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLATFORMS -d .whl \
    beartype==0.23.1 eai-sparsify==1.3.3 schedulefree==1.4.1 simple-parsing==0.1.9 docstring-parser==0.18.0 natsort==8.4.0 \
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
du -sh .whl
