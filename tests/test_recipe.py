"""The training recipe (arXiv:2406.04093 §2.4, §5.3) written out by hand: Multi-TopK's loss, AuxK's reach, the
dead-token
window, and configs that survive a JSON round trip."""
import json

import torch

from topk_sae.losses import LossInputs
from topk_sae.model import SAEConfig, TopKSAE, dense_decode, topk_relu
from topk_sae.train import DeadLatents, TrainConfig, train

def _sae_and_batch(seed=0, n=48, d=12, k=3, tok=64):
    sae = TopKSAE(SAEConfig(d_model=d, n_latents=n, k=k), seed=seed, dtype=torch.float64)
    x = torch.randn(tok, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 4 + 1
    sae.init_from_data_(x)
    return sae, sae.normalize(x)[0]


def test_multi_topk_loss_is_L_k_plus_L_4k_over_8():
    sae, x_n = _sae_and_batch()
    var0 = 0.7
    out = sae.training_loss(x_n, LossInputs(var0, multi_topk=True))
    h = (x_n - sae.b_dec) @ sae.W_enc + sae.b_enc
    def loss(kk): return (dense_decode(topk_relu(h, kk), sae.W_dec) + sae.b_dec - x_n).pow(2).mean() / var0
    torch.testing.assert_close(out.loss, loss(3) + loss(12) / 8)
    torch.testing.assert_close(out.fvu, loss(3))
    plain = sae.training_loss(x_n, LossInputs(var0))
    torch.testing.assert_close(plain.loss, loss(3))


def test_auxk_trains_only_dead_latents_and_leaves_the_main_path_alone():
    sae, x_n = _sae_and_batch(seed=1)
    with torch.no_grad(): sae.b_enc[:24] += 10.0  # latents 0..23 always win the top-k; 24..47 never fire
    dead = DeadLatents(48)
    dead.since[24:] = 10**9  # ... and have not fired for a long time: they are dead
    out = sae.training_loss(x_n, LossInputs(1.0, dead.candidates(64, 10**6), k_aux=4, aux_coef=1.0))
    assert out.aux > 0
    main_grads = torch.autograd.grad(out.fvu, [sae.W_dec, sae.W_enc], retain_graph=True)
    aux_grads = torch.autograd.grad(out.aux, [sae.W_dec, sae.W_enc, sae.b_enc])
    is_dead = torch.arange(48) >= 24
    assert aux_grads[0][~is_dead].abs().max() == 0 and aux_grads[0][is_dead].abs().max() > 0
    assert aux_grads[1][:, ~is_dead].abs().max() == 0
    assert aux_grads[2][~is_dead].abs().max() == 0  # e = x_n - x_hat is detached: nothing flows into the live latents
    assert main_grads[0][is_dead].abs().max() == 0  # dead latents were not in the top-k here
    fired = out.top.idx[out.top.acts > 0]
    assert not is_dead[fired].any()


def test_dead_latents_switch_auxk_on_during_training():
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(4096, 16, generator=g) @ torch.randn(16, 16, generator=g)
    res = train(TopKSAE(SAEConfig.tiny(n_latents=256, k=2)), acts,
                TrainConfig.tiny(n_tokens=16 * 1024, batch_tokens=512, dead_tokens=1024, lr=3e-3))
    assert res.recipe.dead_tokens == 1024
    assert (res.history.dead_fraction > 0).any(), "with 256 latents, k=2 and a 1024-token window some latents must die"
    assert (res.history.aux_loss[res.history.dead_fraction > 0] > 0).all()


def test_train_config_json_round_trip():
    cfg = TrainConfig(n_tokens=10**6, lr=1e-3, multi_topk=True, adam_betas=(0.8, 0.99))
    back = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and isinstance(back.adam_betas, tuple)
