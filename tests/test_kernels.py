"""The sparse training kernels equal plain autograd: values and gradients over random shapes (n not a power
of two), with and without AuxK and Multi-TopK, and whole training steps that end at the same weights."""
import copy

import torch
from hypothesis import given, settings, strategies as st

from topk_sae.kernels import TopKEncoder, encode_for_training, scatter_outer, select_codes
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.train import DeadLatents, EMA, TrainConfig, loss_normalizer, make_optimizer, resolve, train_step


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
        outs.append((tv, ti, av, ai, *torch.autograd.grad((tv * up_t).sum() + (av * up_a).sum(), (x, W, b, b_dec), allow_unused=True)))
    for a, r in zip(*outs):
        if r is None: assert a is None or a.abs().max() == 0
        else: torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 50), st.integers(1, 9), st.integers(1, 40), st.integers(1, 8), st.integers(0, 2**16))
def test_scatter_outer_equals_dense(tok, d, n, k, seed):
    g = torch.Generator().manual_seed(seed)
    idx, vals, x = torch.randint(0, n, (tok, k), generator=g), torch.randn(tok, k, generator=g, dtype=torch.float64), torch.randn(tok, d, generator=g, dtype=torch.float64)
    dense = torch.zeros(tok, n, dtype=torch.float64).scatter_add_(1, idx, vals).T @ x
    torch.testing.assert_close(scatter_outer(idx, vals, x, n), dense)


@settings(max_examples=30, deadline=None)
@given(st.integers(4, 24), st.integers(8, 97), st.booleans(), st.integers(0, 2**16))
def test_training_steps_match(d, n, multi, seed):
    k = max(1, n // 8)
    base = TopKSAE(SAEConfig(d_model=d, n_latents=n, k=k), seed=seed, dtype=torch.float64)
    x = torch.randn(128, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3 + 1
    base.init_from_data_(x)
    finals = []
    for impl in ("sparse", "dense"):
        sae = copy.deepcopy(base)
        cfg = TrainConfig(n_tokens=128 * 4, batch_tokens=128, multi_topk=multi, dead_tokens=128, lr=1e-2, kernels=impl, progress=False)
        recipe, dead, ema = resolve(cfg, sae), DeadLatents(n), EMA(sae, 0.9)
        opt, var0 = make_optimizer(sae, cfg, recipe.lr), loss_normalizer(sae, x)
        losses = [train_step(sae, opt, x, var0, dead, ema, cfg, recipe).loss.item() for _ in range(4)]
        finals.append((losses, sae.state_dict()))
    assert finals[0][0] == pytest_approx(finals[1][0])
    for key, v in finals[0][1].items(): torch.testing.assert_close(v, finals[1][1][key], rtol=1e-7, atol=1e-9)


def pytest_approx(xs):
    import pytest
    return pytest.approx(xs, rel=1e-8, abs=1e-10)


def test_bf16_autocast_trains_on_cpu():
    x = torch.randn(2048, 16) * 2 + 1
    from topk_sae.train import train
    res = train(TopKSAE(SAEConfig.tiny()), x, TrainConfig.tiny(n_tokens=8192, lr=3e-3, precision="bf16"))
    assert res.sae.W_dec.dtype == torch.float32 and torch.isfinite(torch.tensor(res.history.loss.values)).all()
    assert res.history.fvu.iloc[-1] < res.history.fvu.iloc[0]
