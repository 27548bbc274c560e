"""The Triton decoder kernels equal the torch path (`topk_sae.model.sparse_decode`, `topk_sae.kernels.SparseDecode`):
forward, the values' gradient and both weight gradients (atomic and sorted), on padded codes and on latents shared by
many tokens; int64 offsets past 2^31 elements; and every kernel compiles ahead of time for sm_75, sm_80 and sm_90.

Without a GPU the kernels run in Triton's interpreter: `TRITON_INTERPRET=1 pytest tests/test_triton.py` (`make test`
does). Small shapes and fp32 only: the interpreter is slow (milliseconds per program) and gets bf16 `tl.dot` and
fp32-to-bf16 casts wrong, so bf16 is checked by compiling, and numerically only on a GPU."""
import os
import platform
import subprocess
import sys
import textwrap

import pytest
import torch

if os.environ.get("CI") and platform.system() == "Linux":
    import triton  # noqa: F401  (a test requirement on Linux: CI must not skip these tests for want of it)
else:
    pytest.importorskip("triton", reason="Triton is not installed (it is a Linux-only test requirement)")
if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no GPU: run with TRITON_INTERPRET=1 (make test does)", allow_module_level=True)

import torch.nn.functional as F

from topk_sae import triton_kernels as tk
from topk_sae.kernels import SparseDecode, decode_for_training
from topk_sae.model import TopKOut, sparse_decode

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def problem(tok: int, k: int, n: int, d: int, seed: int = 0, distinct: bool = True):
    "A code (distinct latents per token, or drawn with repeats), its values, W_dec and an upstream gradient."
    g = torch.Generator().manual_seed(seed)
    if distinct: idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(tok)])
    else: idx = torch.randint(0, n, (tok, k), generator=g)
    vals, W, up = torch.rand(tok, k, generator=g), torch.randn(n, d, generator=g), torch.randn(tok, d, generator=g)
    return tuple(t.to(DEV) for t in (idx, vals, W, up))


def reference_grad_W(idx, vals, up, n):
    return torch.zeros(n, up.shape[1], dtype=torch.float64, device=up.device).index_add_(
        0, idx.flatten(), (vals.double()[..., None] * up.double()[:, None]).reshape(-1, up.shape[1]))


def test_available_here():
    assert tk.available(DEV)


@pytest.mark.parametrize("tok,k,n,d", [(17, 5, 40, 200), (3, 1, 2, 1), (9, 33, 50, 7)])
def test_forward_equals_embedding_bag(tok, k, n, d):
    idx, vals, W, _ = problem(tok, k, n, d)
    torch.testing.assert_close(tk.decode_forward(idx, vals, W), F.embedding_bag(idx, W, per_sample_weights=vals,
                                                                                  mode="sum"), atol=1e-5, rtol=1e-5)


def test_forward_int32_indices_and_a_strided_W():
    idx, vals, W, _ = problem(6, 4, 30, 20)
    wide = torch.randn(30, 64, device=DEV)
    wide[:, :20] = W
    ref = F.embedding_bag(idx, W, per_sample_weights=vals, mode="sum")
    torch.testing.assert_close(tk.decode_forward(idx.int(), vals, wide[:, :20]), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("tok,k,n,d", [(17, 5, 40, 200), (9, 33, 50, 7)])
def test_grad_vals_equals_gather(tok, k, n, d):
    idx, _, W, up = problem(tok, k, n, d)
    torch.testing.assert_close(tk.decode_grad_vals(idx, W, up), (W[idx] * up[:, None]).sum(-1), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("tok,k,n,d,distinct", [(17, 5, 40, 200, True), (40, 6, 3, 9, False), (5, 3, 1000, 16, True)])
def test_grad_W_equals_index_add(tok, k, n, d, distinct, deterministic):
    "Distinct latents; 3 latents shared by 40 tokens (the atomic adds collide; the sorted runs span many blocks)."
    idx, vals, _, up = problem(tok, k, n, d, distinct=distinct)
    got = tk.decode_grad_W(idx, vals, up, n, deterministic=deterministic)
    assert got.dtype == torch.float32 and got.shape == (n, d)
    torch.testing.assert_close(got.double(), reference_grad_W(idx, vals, up, n), atol=1e-4, rtol=1e-4)


def test_sorted_grad_W_is_the_same_every_run():
    idx, vals, _, up = problem(40, 6, 3, 9, distinct=False)
    runs = [tk.decode_grad_W(idx, vals, up, 3, deterministic=True) for _ in range(2)]
    assert torch.equal(*runs)


def test_grad_W_writes_only_the_selected_rows_of_out():
    idx, vals, _, up = problem(5, 2, 12, 8)
    out = torch.full((12, 8), 7.0, device=DEV)
    out[idx.flatten()] = 0
    tk.decode_grad_W(idx, vals, up, 12, deterministic=True, out=out)
    untouched = torch.ones(12, dtype=torch.bool, device=DEV)
    untouched[idx.flatten()] = False
    assert (out[untouched] == 7).all()
    torch.testing.assert_close(out[~untouched].double(), reference_grad_W(idx, vals, up, 12)[~untouched])


def decode_and_grads(dec, idx, vals, W, up):
    "A decoder's output and the gradients of (output * up).sum() with respect to the values and W_dec."
    v, w = vals.clone().requires_grad_(), W.clone().requires_grad_()
    y = dec(idx, v, w)
    return (y, *torch.autograd.grad((y * up).sum(), (v, w)))


@pytest.mark.parametrize("deterministic", [False, True])
def test_autograd_equals_sparse_decode(deterministic):
    "Against SparseDecode, the CPU kernels (whose values' gradient wants distinct latents per token)."
    idx, vals, W, up = problem(17, 6, 40, 33)
    ours = decode_and_grads(lambda i, v, w: tk.sparse_decode(i, v, w, deterministic), idx, vals, W, up)
    ref = decode_and_grads(lambda i, v, w: SparseDecode.apply(v, i, w), idx, vals, W, up)
    assert type(ours[0].grad_fn).__name__ == "TritonDecodeBackward"
    for a, r in zip(ours, ref): torch.testing.assert_close(a, r, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("deterministic", [False, True])
def test_autograd_on_a_padded_code(deterministic):
    "A fixed-width AuxK code where few latents are dead: the tail entries point at latent 0 with value 0."
    idx, vals, W, up = problem(17, 6, 40, 33)
    idx[:, 4:], vals[:, 4:] = 0, 0.0
    ours = decode_and_grads(lambda i, v, w: tk.sparse_decode(i, v, w, deterministic), idx, vals, W, up)
    ref = decode_and_grads(lambda i, v, w: sparse_decode(TopKOut(v, i), w), idx, vals, W, up)
    for a, r in zip(ours, ref): torch.testing.assert_close(a, r, atol=1e-4, rtol=1e-4)


def test_deterministic_follows_torch_switch(monkeypatch):
    seen = []
    monkeypatch.setattr(tk.TritonDecode, "apply", lambda *a: seen.append(a[-1]) or tk.decode_forward(*a[1::-1], a[2]))
    idx, vals, W, _ = problem(2, 2, 5, 4)
    tk.sparse_decode(idx, vals, W)
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: True)
    tk.sparse_decode(idx, vals, W)
    assert seen == [False, True]


def test_torch_path_when_switched_off(monkeypatch):
    idx, vals, W, _ = problem(4, 3, 10, 6)
    ref = F.embedding_bag(idx, W, per_sample_weights=vals, mode="sum")
    monkeypatch.setenv("TOPK_SAE_TRITON", "0")
    assert not tk.available(DEV)
    y = tk.sparse_decode(idx, vals, W.requires_grad_())
    assert "TritonDecode" not in type(y.grad_fn).__name__
    torch.testing.assert_close(y, ref)


@pytest.mark.skipif(DEV != "cuda", reason="bf16 numerics need a GPU (the interpreter's fp32-to-bf16 casts are wrong)")
def test_bf16_equals_the_torch_path_on_cuda():
    idx, vals, W, up = problem(64, 16, 300, 256)
    ours = decode_and_grads(tk.sparse_decode, idx, vals, W.bfloat16(), up)
    ref = decode_and_grads(lambda i, v, w: sparse_decode(TopKOut(v, i), w), idx, vals, W.bfloat16(), up)
    assert type(ours[0].grad_fn).__name__ == "TritonDecodeBackward" and ours[2].dtype == torch.bfloat16
    for a, r in zip(ours, ref): torch.testing.assert_close(a.float(), r.float(), atol=5e-2, rtol=3e-2)


def test_decode_for_training_uses_triton_on_cuda_only():
    idx, vals, W, _ = problem(4, 3, 10, 6)
    y = decode_for_training(TopKOut(vals, idx), W.requires_grad_())
    assert (type(y.grad_fn).__name__ == "TritonDecodeBackward") == (DEV == "cuda")


def test_bench_script_says_why_it_has_nothing_to_time_without_a_gpu():
    if DEV == "cuda": pytest.skip("a GPU is here: tools/gpu_check.sh runs the script")
    script = os.path.join(os.path.dirname(__file__), "..", "bench", "triton_decode.py")
    r = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0 and "no CUDA device here" in r.stdout, r.stderr[-2000:]


# Offsets past 2^31 elements: a wrapped int32 offset reads or writes outside the tensor (a segmentation fault under
# the interpreter), so these run in a subprocess. The tensors are only reserved: 4 GiB (fp16 W_dec) and 8 GiB (the
# fp32 gradient) of address space, of which only the rows the code names are touched.
BIG = textwrap.dedent("""
    import torch
    from topk_sae import triton_kernels as tk
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    n, d = 2**19 + 1, 4096
    idx = torch.tensor([[n - 1, 3], [3, n - 1]], device=dev)
    vals, up = torch.tensor([[1.0, 2.0], [0.5, 0.0]], device=dev), torch.randn(2, d, device=dev)
    W = torch.empty(n, d, dtype=torch.float16, device=dev)
    W[[n - 1, 3]] = torch.randn(2, d, device=dev).half()
    rows = W[idx].float()
    torch.testing.assert_close(tk.decode_forward(idx, vals, W).float(), (vals[..., None] * rows).sum(1),
                               atol=1e-2, rtol=1e-2)
    torch.testing.assert_close(tk.decode_grad_vals(idx, W, up), (rows * up[:, None]).sum(-1), atol=1e-2, rtol=1e-3)
    for det in (False, True):
        out = torch.empty(n, d, device=dev)
        out[[n - 1, 3]] = 0
        tk.decode_grad_W(idx, vals, up, n, deterministic=det, out=out)
        torch.testing.assert_close(out[n - 1], up[0] + 0.0 * up[1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[3], 2.0 * up[0] + 0.5 * up[1], atol=1e-5, rtol=1e-5)
        del out
    print("ok")
""")


def test_int64_offsets_past_2_31_elements():
    assert (2**19) * 4096 >= 2**31  # the last row starts past the largest int32
    r = subprocess.run([sys.executable, "-c", BIG], capture_output=True, text=True, timeout=300, check=False)
    if r.returncode != 0 and ("can't allocate memory" in r.stderr or "OutOfMemoryError" in r.stderr):
        pytest.skip("this machine refuses 12 GiB (of address space on the CPU, under its overcommit rules)")
    assert r.returncode == 0 and r.stdout.strip() == "ok", f"exit {r.returncode}: {r.stderr[-3000:]}"


# Ahead-of-time compilation for GPUs that are not here: Triton's compiler and its bundled ptxas, no driver. In a fresh
# process without the interpreter (which patches what the compiler uses), under the tests' type-checking import hook,
# which must leave the kernels unwrapped (as in a pytest run on a GPU).
AOT = textwrap.dedent("""
    from jaxtyping import install_import_hook
    install_import_hook("topk_sae", "beartype.beartype")
    from topk_sae.triton_kernels import aot_compile
    for cc in (75, 80, 90):
        for dtype in ("fp32", "bf16"):
            kernels = aot_compile(cc, dtype)
            assert len(kernels) == 4 and all(len(c.asm["cubin"]) > 0 for c in kernels.values()), (cc, dtype)
            assert all(f".target sm_{cc}" in c.asm["ptx"] for c in kernels.values()), (cc, dtype)
            print(cc, dtype, sorted(kernels))
""")


@pytest.mark.skipif(DEV == "cuda", reason="on a GPU the kernels are compiled for it by the tests above")
def test_kernels_compile_ahead_of_time_for_sm75_sm80_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", AOT], capture_output=True, text=True, timeout=300, env=env, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(r.stdout.splitlines()) == 6
