"""The benchmark scripts CI never times still run: bench/gpu.py's smoke mode on the CPU produces its table."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_bench_smoke_run(tmp_path):
    out = tmp_path / "gpu.md"
    args = [sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--quick", "--repeats", "1",
            "--out", str(out)]
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=600)
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| 64 |")]
    names = {r[3] for r in rows}
    expected = {"topk_sae (bf16 autocast)", "topk_sae (fp32)", "topk_sae (bf16, dense reference kernels)",
                "floor: x @ W_enc (bf16)"}
    assert expected <= names
    assert all(float(r[4]) > 0 for r in rows)  # a median time in ms for every row


def test_gpu_bench_refuses_a_missing_gpu():
    if torch.cuda.is_available(): pytest.skip("a CUDA device is here")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py")], capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode != 0 and "no CUDA device" in r.stderr
