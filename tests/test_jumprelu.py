"""JumpReLU SAE (arXiv:2407.14435): the forward pass and the straight-through gradients against the paper's formulas
written out, training through `topk_sae.train.train`, the adaptive L0 coefficient, checkpoint + resume, save/load."""
import math

import pytest
import torch

from topk_sae.activations import TensorSource
from topk_sae.jumprelu import JumpReLUConfig, JumpReLUSAE
from topk_sae.losses import LossInputs
from topk_sae.metrics import scan
from topk_sae.model import load_sae
from topk_sae.train import TrainConfig, train

def _sae(normalize: str = "none", seed: int = 0, dtype=torch.float64, **kw) -> JumpReLUSAE:
    sae = JumpReLUSAE(JumpReLUConfig(d_model=6, n_latents=10, normalize=normalize, **kw), seed=seed, dtype=dtype)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.b_enc.copy_(torch.rand(10, generator=g, dtype=dtype) * 0.4 - 0.2)
        sae.b_dec.copy_(torch.randn(6, generator=g, dtype=dtype) * 0.3)
        sae.log_threshold.copy_((torch.rand(10, generator=g, dtype=dtype) * 0.6 + 0.2).log())
    return sae


def _toy(n: int = 8000) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(64, 16, generator=g), dim=1)
    return (torch.rand(n, 64, generator=g) * (torch.rand(n, 64, generator=g) < 0.05)) @ dirs * 10 + 3


def test_forward_matches_the_formula_written_out():
    sae = _sae("layernorm", dtype=torch.float32)
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(1)) * 5 + 2
    mu, std = x.mean(-1, keepdim=True), (x - x.mean(-1, keepdim=True)).std(-1, keepdim=True)
    x_n = (x - mu) / (std + 1e-5)
    with torch.no_grad():
        pre = (x_n - sae.b_dec) @ sae.W_enc + sae.b_enc
        theta = torch.exp(sae.log_threshold)
        z = torch.where(pre > theta, pre, torch.zeros_like(pre)).clamp_min(0)
        torch.testing.assert_close(sae.encode(x), z)
        torch.testing.assert_close(sae(x), (z @ sae.W_dec + sae.b_dec) * std + mu)
        torch.testing.assert_close(sae.jumprelu_threshold(), theta)
    assert 0 < (z > 0).sum() < z.numel()  # the example has latents on both sides of their thresholds


def test_threshold_gradient_is_the_papers_pseudo_derivative():
    """d loss / d log_threshold, by the paper's STE (rectangle kernel K, bandwidth eps), computed by hand:
    for latent i, dL/dtheta_i = sum_t [ -(theta_i / eps) K((z_ti - theta_i) / eps) * dL/dy_ti ]   (the jump)
                              + coef * sum_t [ -(1 / eps) K((z_ti - theta_i) / eps) ] / T     (the L0 term)
    where y = JumpReLU(z) is the code, z = ReLU(pre), and dL/dy = 2 (y W_dec + b_dec - x) W_dec^T / (T d var0);
    and dL/dlog_theta = theta * dL/dtheta."""
    coef, var0, bandwidth = 0.02, 1.5, 0.08
    sae = _sae(l0_coef=coef, bandwidth=bandwidth)
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    T, d = x.shape
    eps = bandwidth * math.sqrt(d * var0)
    out = sae.training_loss(x, LossInputs(var0=var0))
    out.loss.backward()
    with torch.no_grad():
        z = ((x - sae.b_dec) @ sae.W_enc + sae.b_enc).clamp_min(0)
        theta = sae.log_threshold.exp()
        y = z * (z > theta)
        dL_dy = 2 * (y @ sae.W_dec + sae.b_dec - x) @ sae.W_dec.T / (T * d * var0)
        K = (((z - theta) / eps).abs() < 0.5).double()
        dtheta = (-(theta / eps) * K * dL_dy).sum(0) + coef * (-(1 / eps) * K).sum(0) / T
        expected_loss = ((y @ sae.W_dec + sae.b_dec - x) ** 2).mean() / var0 + coef * (z > theta).double().sum(1).mean()
    assert K.sum() >= 3, "the example must put some pre-activations inside the kernel"
    torch.testing.assert_close(out.loss.detach(), expected_loss)
    torch.testing.assert_close(sae.log_threshold.grad, theta * dtheta)
    # the encoder gets the ordinary gradient through the kept latents only, nothing from the L0 term
    dpre = dL_dy * (z > theta)
    torch.testing.assert_close(sae.b_enc.grad, dpre.sum(0))


def test_trains_and_target_l0_is_reached():
    toy = _toy()
    held, data = toy[-1000:], toy[:-1000]
    cfg = TrainConfig.tiny(n_tokens=30_000)
    loose = train(JumpReLUSAE(JumpReLUConfig.tiny(l0_coef=1e-3)), data, cfg)
    tight = train(JumpReLUSAE(JumpReLUConfig.tiny(l0_coef=0.1)), data, cfg)
    aimed = train(JumpReLUSAE(JumpReLUConfig.tiny(target_l0=8.0)), data, cfg)
    l0 = {name: scan(r.sae, held).l0 for name, r in (("loose", loose), ("tight", tight), ("aimed", aimed))}
    assert l0["loose"] > l0["tight"], l0
    assert abs(l0["aimed"] - 8.0) < 2.0, l0
    assert scan(loose.sae, held).fvu < 0.5
    assert abs(aimed.history.l0.iloc[-1] - 8.0) < 2.0, aimed.history.l0.tolist()  # the training batches' L0 too
    assert aimed.sae.l0_coef.item() != pytest.approx(1e-3)  # the coefficient moved


class _Stop(TensorSource):
    "A source that fails after `after` batches, as a killed run would stop."
    def __init__(self, acts: torch.Tensor, after: int):
        super().__init__(acts)
        self.after = after

    def batches(self, batch_tokens: int, seed: int = 0, start: int = 0):
        for i, b in enumerate(super().batches(batch_tokens, seed, start)):
            if i == self.after: raise RuntimeError("stopped")
            yield b


def test_checkpoint_and_resume_equal_an_uninterrupted_run(tmp_path):
    acts = _toy(4000)
    def cfg(folder):
        return TrainConfig.tiny(n_tokens=24 * 256, checkpoint_every=6 * 256, checkpoint_dir=str(tmp_path / folder),
                                resume=True)
    whole = train(JumpReLUSAE(JumpReLUConfig.tiny(target_l0=6.0)), acts, cfg("whole"))
    with pytest.raises(RuntimeError, match="stopped"):
        train(JumpReLUSAE(JumpReLUConfig.tiny(target_l0=6.0)), _Stop(acts, after=14), cfg("cut"))
    resumed = train(JumpReLUSAE(JumpReLUConfig.tiny(target_l0=6.0)), acts, cfg("cut"))
    assert resumed.history.step.iloc[0] < 14 and resumed.history.step.iloc[-1] == 24
    for (k, a), b in zip(whole.sae.state_dict().items(), resumed.sae.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=lambda m, k=k: f"{k}: {m}")
    assert whole.raw.l0_coef.item() != pytest.approx(1e-3)  # the adapted coefficient is part of what resumed


def test_save_load_round_trip(tmp_path):
    sae = _sae("scalar", dtype=torch.float32, target_l0=5.0)
    with torch.no_grad(): sae.norm_scale.fill_(2.0); sae.l0_coef.fill_(-3e-4)
    back = load_sae(sae.save(tmp_path / "j"))
    assert type(back) is JumpReLUSAE and back.cfg == sae.cfg
    for k, v in sae.state_dict().items(): torch.testing.assert_close(back.state_dict()[k], v)
    x = torch.randn(20, 6) * 3
    torch.testing.assert_close(back(x), sae(x))


def test_options_that_do_not_apply_are_refused():
    with pytest.raises(ValueError, match="a JumpReLU SAE has no k.*set l0_coef, or target_l0"):
        JumpReLUConfig(d_model=8, n_latents=32, k=4)
    assert JumpReLUConfig(d_model=8, n_latents=32).k == 32  # the saved value of the sentinel reads back
    with pytest.raises(ValueError, match="target_l0=0.0 must be positive"):
        JumpReLUConfig(d_model=8, n_latents=32, target_l0=0.0)
    with pytest.raises(ValueError, match="multi_topk is a TopK option"):
        _sae().training_loss(torch.zeros(3, 6, dtype=torch.float64), LossInputs(var0=1.0, multi_topk=True))


def test_folding_decoder_norms_keeps_the_code_and_the_reconstruction():
    "The fold of the EMA weights (and of `fold_decoder_norm_`) scales each threshold with its latent: no gate moves."
    from topk_sae.train import EMA, _with_weights, ema_weights, fold_decoder_norm_
    sae, x = _sae(), torch.randn(500, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 + 1
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 2.0, sae.cfg.n_latents, dtype=sae.W_dec.dtype)[:, None])
        sae.log_threshold.copy_(sae.pre_acts(sae.normalize(x)[0]).quantile(0.9, dim=0).clamp_min(1e-3).log())
    z, x_hat = sae.encode(x), sae(x)
    assert (z > 0).any() and not (z > 0).all()
    ema = EMA(sae, decay=0.0)
    ema.update(sae)  # decay 0: the averages are the weights themselves
    folded = _with_weights(_sae(), ema_weights(sae, ema))
    fold_decoder_norm_(sae)
    for s in (sae, folded):
        torch.testing.assert_close((s.encode(x) > 0), (z > 0))
        torch.testing.assert_close(s(x), x_hat)
        torch.testing.assert_close(s.W_dec.norm(dim=1), torch.ones(s.cfg.n_latents, dtype=s.W_dec.dtype))
