"""The ReLU + L1 baseline and the scaling-law fits, against written-out formulas; the studies' run names."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from topk_sae.laws import PAPER_JOINT, fit_joint, fit_power_law, joint_law
from topk_sae.losses import LossInputs
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.relu import ReLUSAE, ReLUSAEConfig
from topk_sae.studies import STUDIES
from topk_sae.sweep import RunSpec, tokens_to_convergence
from topk_sae.train import TrainConfig, fold_decoder_norm_, resolve, train

def test_relu_loss_and_gradients_equal_the_formula():
    torch.manual_seed(0)
    sae = ReLUSAE(ReLUSAEConfig(d_model=12, n_latents=40, l1_coef=0.3, normalize="layernorm"), seed=3)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.2); sae.b_dec.normal_(0, 0.5)
    x = torch.randn(50, 12) * 2 + 1
    x_n, _ = sae.normalize(x)
    var0 = 0.7
    out = sae.training_loss(x_n, LossInputs(var0))
    got = torch.autograd.grad(out.loss, [sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec])
    params = (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec)
    W_enc, b_enc, W_dec, b_dec = (p.detach().clone().requires_grad_() for p in params)
    z = torch.relu((x_n - b_dec) @ W_enc + b_enc)  # the paper's encoder, b_pre subtracted
    loss = ((z @ W_dec + b_dec - x_n) ** 2).sum(1).mean() / (12 * var0) + 0.3 * z.sum(1).mean() / math.sqrt(12 * var0)
    want = torch.autograd.grad(loss, [W_enc, b_enc, W_dec, b_dec])
    torch.testing.assert_close(out.loss, loss, rtol=1e-5, atol=1e-6)
    for g, w in zip(got, want): torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def test_relu_code_is_the_positive_part_and_folding_the_decoder_norm_is_exact():
    sae = ReLUSAE(ReLUSAEConfig(d_model=8, n_latents=32, normalize="none"))
    with torch.no_grad(): sae.b_enc.fill_(-0.2)
    x = torch.randn(20, 8)
    z = sae.encode(x)
    torch.testing.assert_close(z, torch.relu(sae.pre_acts(x)))
    before = sae(x)
    with torch.no_grad():
        s = torch.rand(32, 1) + 0.5
        sae.W_dec.mul_(s); sae.W_enc.div_(s.T); sae.b_enc.div_(s[:, 0])
    torch.testing.assert_close(fold_decoder_norm_(sae)(x), before, rtol=1e-4, atol=1e-5)


def test_relu_sae_trains_in_the_shared_loop_and_keeps_unit_norm_rows():
    g = torch.Generator().manual_seed(1)
    dirs = torch.nn.functional.normalize(torch.randn(32, 8, generator=g), dim=1)
    data = (torch.rand(4000, 32, generator=g) * (torch.rand(4000, 32, generator=g) < 0.1)) @ dirs * 5
    sae = ReLUSAE(ReLUSAEConfig(d_model=8, n_latents=32, l1_coef=0.05, normalize="none"))
    res = train(sae, data, TrainConfig.tiny(n_tokens=16_000, lr=3e-3))
    torch.testing.assert_close(res.raw.W_dec.norm(dim=1), torch.ones(32), rtol=0, atol=1e-5)
    assert res.history.fvu.iloc[-1] < 0.6 * res.history.fvu.iloc[0]
    cfg = TrainConfig(n_tokens=10_000)
    assert resolve(cfg, res.raw).lr == pytest.approx(resolve(cfg, TopKSAE(SAEConfig(8, 32, 4))).lr / 4)


def test_untied_init_changes_only_the_encoder():
    g = torch.Generator().manual_seed(2)
    data = torch.randn(3000, 8, generator=g)
    cfg = TrainConfig.tiny(n_tokens=256)
    a = train(TopKSAE(SAEConfig(8, 32, 4)), data, cfg).raw
    b = train(TopKSAE(SAEConfig(8, 32, 4)), data, TrainConfig.tiny(n_tokens=256, tied_init=False)).raw
    cos_a = (a.W_enc.T * a.W_dec).sum(1) / a.W_enc.norm(dim=0)
    cos_b = (b.W_enc.T * b.W_dec).sum(1) / b.W_enc.norm(dim=0)
    assert cos_a.mean() > 0.9 and cos_b.abs().mean() < 0.5


def test_joint_law_is_the_paper_formula():
    a, b_k, b_n, g, z, e = PAPER_JOINT.values()
    n, k = 2.0**15, 32.0
    lk, ln = math.log(k), math.log(n)
    want = math.exp(a + b_k * lk + b_n * ln + g * lk * ln) + math.exp(z + e * lk)
    assert joint_law((np.array([n]), np.array([k])), *PAPER_JOINT.values())[0] == pytest.approx(want, rel=1e-12)
    # the paper's law falls with n at fixed k, and its second term depends on k only
    Ls = joint_law((np.array([2.0**12, 2.0**16, 2.0**20]), np.full(3, 32.0)), *PAPER_JOINT.values())
    assert (np.diff(Ls) < 0).all() and Ls[-1] > math.exp(z + e * math.log(32))


def test_fits_get_the_sign_of_the_exponents():
    n = np.array([256, 512, 1024, 2048, 4096, 8192])
    rising = fit_power_law(n, 0.05 + 0.002 * n**0.3)  # wrong-way data: the exponent must come back as no decay
    assert rising.params["alpha"] == pytest.approx(0.0, abs=1e-3) or rising.rmse_log > 0.01
    falling = fit_power_law(n, 0.05 + 2.0 * n**-0.3)
    assert falling.params["alpha"] == pytest.approx(0.3, abs=0.02)
    nn, kk = np.meshgrid([2**10, 2**12, 2**14, 2**16], [8, 32, 128])
    L = joint_law((nn.ravel(), kk.ravel()), *PAPER_JOINT.values())
    fit = fit_joint(nn.ravel(), kk.ravel(), L)
    assert fit.rmse_log < 1e-3


def test_tokens_to_convergence_counts_tokens_not_rows():
    h = pd.DataFrame({"tokens": np.arange(1, 101) * 4096, "fvu": np.r_[np.linspace(1, 0.5, 50), np.full(50, 0.5)]})
    assert tokens_to_convergence(h, smooth=0.001) == pytest.approx(50 * 4096, rel=0.05)
    assert math.isnan(tokens_to_convergence(h.iloc[:1]))


def test_runspec_names_are_unique_over_a_study():
    for study in STUDIES.values():
        names = [r.name for rs in study.experiments.values() for r in rs]
        specs = {}
        for rs in study.experiments.values():
            for r in rs:
                key = RunSpec(**{**r.__dict__, "full_eval": False})
                assert specs.setdefault(r.name, key) == key, f"two different specs share the name {r.name}"
        assert len(set(names)) == len(study.runs())
