"""The sparse training kernels equal plain autograd: values and gradients over random shapes (n not a power
of two), with and without AuxK and Multi-TopK, the sparse decoder's backward, and whole training steps that end
at the same weights; the reused buffers really are reused and never leak stale values."""
import pytest
import torch
from helpers import assert_same, assert_steps_match, steps_by_kernel
from hypothesis import given, settings
from hypothesis import strategies as st

from topk_sae.kernels import (
    WORKSPACE,
    TopKEncoder,
    decode_for_training,
    encode_for_training,
    gather_dot,
    kernel_path,
    scatter_outer,
    select_codes,
)
from topk_sae.model import SAEConfig, TopKOut, TopKSAE, dense_decode
from topk_sae.train import TrainConfig, TrainState

@settings(max_examples=150, deadline=None)
@given(st.integers(1, 64), st.integers(1, 16), st.integers(2, 97), st.data())
def test_encoder_values_and_gradients(tok, d, n, data):
    k = data.draw(st.integers(1, n))
    k_aux = data.draw(st.integers(0, n))
    sort = data.draw(st.booleans())
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
    x = torch.randn(tok, d, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(d, n, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True)
    b_dec = torch.randn(d, generator=g, dtype=torch.float64, requires_grad=True)
    cand = torch.rand(n, generator=g) < 0.5
    outs = []
    for fn in (lambda: TopKEncoder.apply(x, W, b, b_dec, k, sort, cand, k_aux, k),
               lambda: select_codes(torch.addmm(b - b_dec @ W, x, W), k, sort, cand, k_aux, k)):
        tv, ti, av, ai = fn()
        up_t = torch.randn(tv.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        up_a = torch.randn(av.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        grads = torch.autograd.grad((tv * up_t).sum() + (av * up_a).sum(), (x, W, b, b_dec), allow_unused=True)
        outs.append((tv, ti, av, ai, *grads))
    assert_same(*outs)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 50), st.integers(1, 9), st.integers(1, 40), st.integers(1, 8), st.integers(0, 2**16))
def test_scatter_outer_equals_dense(tok, d, n, k, seed):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (tok, k), generator=g)
    vals = torch.randn(tok, k, generator=g, dtype=torch.float64)
    x = torch.randn(tok, d, generator=g, dtype=torch.float64)
    dense = torch.zeros(tok, n, dtype=torch.float64).scatter_add_(1, idx, vals).T @ x
    torch.testing.assert_close(scatter_outer(idx, vals, x, n), dense)


@settings(max_examples=30, deadline=None)
@given(st.integers(4, 24), st.integers(8, 97), st.booleans(), st.integers(0, 2**16))
def test_training_steps_match(d, n, multi, seed):
    k = max(1, n // 8)
    base = TopKSAE(SAEConfig(d_model=d, n_latents=n, k=k), seed=seed, dtype=torch.float64)
    x = torch.randn(128, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3 + 1
    base.init_from_data_(x)
    assert_steps_match(*(steps_by_kernel(base, x, impl, multi_topk=multi) for impl in ("sparse", "dense")))


def test_bf16_autocast_trains_on_cpu():
    x = torch.randn(2048, 16) * 2 + 1
    from topk_sae.train import train
    res = train(TopKSAE(SAEConfig.tiny()), x, TrainConfig.tiny(n_tokens=8192, lr=3e-3, precision="bf16"))
    assert res.sae.W_dec.dtype == torch.float32 and torch.isfinite(torch.tensor(res.history.loss.values)).all()
    assert res.history.fvu.iloc[-1] < res.history.fvu.iloc[0]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 48), st.integers(1, 13), st.integers(1, 97), st.data())
def test_sparse_decode_values_and_gradients(tok, d, n, data):
    k = data.draw(st.integers(1, min(n, 12)))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
    idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(tok)])  # distinct latents per token (a code)
    acts = torch.randn(tok, k, generator=g, dtype=torch.float64).relu().requires_grad_()
    W = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    up = torch.randn(tok, d, generator=g, dtype=torch.float64)
    outs = []
    code = TopKOut(acts, idx)
    for dec in (lambda: decode_for_training(code, W, "sparse"), lambda: dense_decode(code, W)):
        y = dec()
        outs.append((y, *torch.autograd.grad((y * up).sum(), (acts, W), allow_unused=True)))
    assert_same(*outs)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 9), st.integers(1, 50), st.integers(0, 8), st.integers(0, 2**16))
def test_gather_dot_equals_gathered_rows(tok, d, n, k, seed):
    g = torch.Generator().manual_seed(seed)
    k = min(k, n)
    idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(tok)])  # distinct within a row, as in a code
    W, y = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(tok, d, generator=g, dtype=torch.float64)
    torch.testing.assert_close(gather_dot(idx, W, y), (W[idx] * y[:, None]).sum(-1))


CPU_PATH_ONLY = pytest.mark.skipif(kernel_path("cpu") == "cuda", reason="the CPU path's reused buffers")


@CPU_PATH_ONLY
def test_reused_buffers_hold_no_stale_values():
    "A buffer handed back full of NaN comes out of the next product overwritten (beta=0 must not read it)."
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 30, (64, 4), generator=g)
    vals, x = torch.randn(64, 4, generator=g), torch.randn(64, 7, generator=g)
    ref = torch.zeros(64, 30).scatter_add_(1, idx, vals).T @ x
    first = scatter_outer(idx, vals, x, 30)
    WORKSPACE.give(first.fill_(float("nan")))
    again = scatter_outer(idx, vals, x, 30)
    assert again.data_ptr() == first.data_ptr()  # the same memory ...
    torch.testing.assert_close(again, ref)  # ... with no NaN left in it


@CPU_PATH_ONLY
def test_training_reuses_its_gradient_buffers():
    """After the first step the encoder and decoder gradients are written into the previous step's memory (AuxK idle:
    its
    decoder gradient is added into the main one by autograd, and that third buffer is a new one each step)."""
    sae = TopKSAE(SAEConfig(d_model=32, n_latents=2048, k=8))
    x = torch.randn(256, 32)
    sae.init_from_data_(x)
    state = TrainState.start(sae, TrainConfig(n_tokens=256 * 3, batch_tokens=256, dead_tokens=10**9, progress=False), x)
    ptrs = []
    for _ in range(3):
        state.step(x)
        ptrs.append({sae.W_enc.grad.data_ptr(), sae.W_dec.grad.data_ptr()})
    assert ptrs[1] == ptrs[2]


def test_encoder_runs_in_bf16_under_autocast():
    "The reused-buffer path writes with `out=`, which autocast does not cast: under autocast the encoder must avoid it."
    sae = TopKSAE(SAEConfig(d_model=32, n_latents=256, k=8))
    x = torch.randn(64, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes = encode_for_training(sae, x, 8)
    assert codes.top.acts.dtype == torch.bfloat16
    codes = encode_for_training(sae, x, 8)
    assert codes.top.acts.dtype == torch.float32


@pytest.mark.parametrize("multi", [False, True])
def test_chunked_encoder_steps_match_the_whole_matrix(multi):
    "Pre-activations in tiles of 7 latents (a running top-k, AuxK in a second pass) train to the same weights."
    base = TopKSAE(SAEConfig(d_model=12, n_latents=50, k=4), seed=3, dtype=torch.float64)
    x = torch.randn(8, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3 + 1  # 32 picks < 50
    base.init_from_data_(x)
    tiled = steps_by_kernel(base, x, "sparse", all_dead=True, multi_topk=multi, encoder_chunk=7)
    assert_steps_match(tiled, steps_by_kernel(base, x, "sparse", all_dead=True, multi_topk=multi))
    assert tiled[0][0].aux.item() > 0  # AuxK ran through the tiles
