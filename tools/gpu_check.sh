#!/usr/bin/env bash
# The GPU checks in one go, for a lent GPU machine (the `device` tool), results under $OUT as they come:
#   here, once:  bash tools/gpu_wheels.sh          (wheels the machine lacks, into the ignored .whl/)
#   then:        device run, carry [".whl"], command "bash tools/gpu_check.sh", timeout_s 420
# 1. machine.txt: GPU, driver, torch.
# 2. tests.log: tests/test_gpu.py on CUDA (sparse = dense steps, bf16 learns like fp32, fp32 losses under autocast,
#    inference and harvest equal the CPU, a resume on the device, a bf16 step at 2^20 latents) and tests/test_meta.py
#    (the step asks the host nothing). At most 100 s.
# 3. triton_tests.log: tests/test_triton.py on CUDA (the Triton decoder kernels against the torch path, bf16 too, and
#    int64 offsets past 2^31 elements). At most 45 s.
# 4. triton_decode.md / triton_bench.log: bench/triton_decode.py, the Triton decoder against embedding_bag, forward and
#    backward; no new configuration after 12 s, cut at 25 s.
# 5. gpu.md / bench.log: bench/gpu.py, the training step against the encoder product and sparsify, one table row group
#    per configuration written as soon as it is measured; an out-of-memory configuration becomes a row, not a crash.
#    No new configuration starts after 90 s; the whole bench is cut at 125 s.
# Everything is bounded by its own timeout: under 5 minutes in all, plus the machine's start.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee "$OUT/machine.txt"
timeout 100 $PY -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py tests/test_meta.py 2>&1 | tee "$OUT/tests.log"
tests=${PIPESTATUS[0]}
timeout 45 $PY -m pytest -q -p no:cacheprovider -rs tests/test_triton.py 2>&1 | tee "$OUT/triton_tests.log"
triton=${PIPESTATUS[0]}
timeout 25 $PY bench/triton_decode.py --budget 12 --out "$OUT/triton_decode.md" 2>&1 | tee "$OUT/triton_bench.log"
triton_bench=${PIPESTATUS[0]}
timeout 125 $PY bench/gpu.py --budget 90 --out "$OUT/gpu.md" 2>&1 | tee "$OUT/bench.log"
bench=${PIPESTATUS[0]}
echo "gpu_check: tests exit $tests, triton tests exit $triton, triton bench exit $triton_bench, bench exit $bench" \
    | tee -a "$OUT/machine.txt"
exit $(( tests || triton || triton_bench || bench ))
