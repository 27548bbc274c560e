#!/usr/bin/env bash
# The GPU checks of issue 5 in one go, for a lent GPU machine (the `device` tool), results under $OUT:
#   here, once:  bash tools/gpu_wheels.sh          (wheels the machine lacks, into the ignored .whl/)
#   then:        device run, carry [".whl"], command "bash tools/gpu_check.sh", timeout_s 600
# It runs tests/test_gpu.py on CUDA (sparse = dense steps, bf16 = fp32 quality, fp32 losses under autocast, inference
# equal to the CPU) and bench/gpu.py (training step against the encoder product and sparsify): at most 4 + 5 minutes
# by its own timeouts, an estimate of 3-6 (never run yet: no GPU has been lent).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee "$OUT/machine.txt"
timeout 240 $PY -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py 2>&1 | tee "$OUT/tests.log"
tests=${PIPESTATUS[0]}
timeout 300 $PY bench/gpu.py --out "$OUT/gpu.md" 2>&1 | tee "$OUT/bench.log"
bench=${PIPESTATUS[0]}
echo "gpu_check: tests exit $tests, bench exit $bench"
exit $(( tests || bench ))
