"""Property tests of the TopK SAE: encoding invariants, the sparse path against its dense reference,
normalization round trips and the decoder constraint, over random shapes and seeds."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from topk_sae.model import (
    NORMALIZE_MODES,
    SAEConfig,
    TopKSAE,
    dense_decode,
    sparse_decode,
    topk_relu,
    unit_norm_decoder_,
)
from topk_sae.train import (
    EMA,
    DeadLatents,
    TrainConfig,
    TrainState,
    loss_normalizer,
    make_optimizer,
    project_decoder_grad_,
    resolve,
)

@st.composite
def sae_and_batch(draw):
    d = draw(st.integers(2, 24))
    n = draw(st.integers(2, 97))  # mostly not powers of two
    k = draw(st.integers(1, n))
    cfg = SAEConfig(d_model=d, n_latents=n, k=k, normalize=draw(st.sampled_from(NORMALIZE_MODES)))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    scale, shift = draw(st.floats(0.1, 100)), draw(st.floats(-50, 50))
    x = (torch.randn(draw(st.integers(1, 20)), d, generator=g) * scale + shift).double()
    sae = TopKSAE(cfg, seed=seed, dtype=torch.float64)
    with torch.no_grad():
        sae.b_dec.normal_(generator=g); sae.b_enc.normal_(generator=g)
        sae.W_enc.add_(0.3 * torch.randn(sae.W_enc.shape, generator=g, dtype=torch.float64))
        sae.norm_scale.fill_(float(x.pow(2).sum(-1).mean().div(d).sqrt()))
    return sae, x


def reference_latents(sae: TopKSAE, x: torch.Tensor) -> torch.Tensor:
    "The TopK encoder (arXiv:2406.04093 §2.3) written out: h = (x_n - b_dec) W_enc + b_enc; keep the k largest; ReLU."
    x_n, _ = sae.normalize(x)
    h = (x_n - sae.b_dec) @ sae.W_enc + sae.b_enc
    kept = h.topk(sae.cfg.k, dim=-1).indices
    z = torch.zeros_like(h)
    return z.scatter(1, kept, h.gather(1, kept).relu())


@settings(max_examples=150, deadline=None)
@given(sae_and_batch())
def test_encode_invariants(case):
    sae, x = case
    with torch.no_grad():
        z = sae.encode(x)
        assert z.shape == (len(x), sae.cfg.n_latents)
        assert (z >= 0).all()
        assert ((z > 0).sum(-1) <= sae.cfg.k).all()
        torch.testing.assert_close(z, reference_latents(sae, x), rtol=1e-9, atol=1e-9)


@settings(max_examples=150, deadline=None)
@given(sae_and_batch())
def test_forward_equals_decode_of_encode_and_the_formula(case):
    sae, x = case
    with torch.no_grad():
        _, stats = sae.normalize(x)
        by_formula = (reference_latents(sae, x) @ sae.W_dec + sae.b_dec) * stats.scale + stats.mu
        torch.testing.assert_close(sae(x), by_formula, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(sae.decode(sae.encode(x), x=x), by_formula, rtol=1e-9, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(sae_and_batch())
def test_normalize_round_trip(case):
    sae, x = case
    with torch.no_grad():
        x_n, stats = sae.normalize(x)
        back = sae.denormalize(x_n, stats)
        if sae.cfg.normalize == "layernorm":  # the eps on the way in is not undone (as in OpenAI's LN)
            scale = stats.scale / (stats.scale + sae.cfg.eps)
            torch.testing.assert_close(back, (x - stats.mu) * scale + stats.mu, rtol=1e-9, atol=1e-9)
        else:
            torch.testing.assert_close(back, x, rtol=1e-9, atol=1e-7)


@settings(max_examples=100, deadline=None)
@given(sae_and_batch())
def test_sparse_decode_matches_dense_values_and_gradients(case):
    sae, x = case
    x_n, _ = sae.normalize(x.detach())
    grad_out = torch.randn(len(x), sae.cfg.d_model, dtype=torch.float64)
    grads = []
    for decode in (sparse_decode, dense_decode):
        sae.zero_grad()
        out = decode(topk_relu(sae.pre_acts(x_n), sae.cfg.k), sae.W_dec)
        (out * grad_out).sum().backward()
        tensors = (out, sae.W_dec.grad, sae.W_enc.grad, sae.b_enc.grad, sae.b_dec.grad)
        grads.append(tuple(t.detach().clone() for t in tensors))
    for a, b in zip(*grads): torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(sae_and_batch(), st.booleans())
def test_training_steps_keep_unit_norm_decoder(case, multi_topk):
    sae, x = case
    x = x.repeat(8, 1)
    cfg = TrainConfig(n_tokens=len(x) * 3, batch_tokens=len(x), multi_topk=multi_topk, dead_tokens=1, lr=1e-2)
    recipe = resolve(cfg, sae)
    var0 = max(loss_normalizer(sae, x), 1e-6)  # a constant batch has none: TrainState.start would refuse it
    opt, ema, dead = make_optimizer(sae, recipe), EMA(sae, 0.9), DeadLatents(sae.cfg.n_latents)
    state = TrainState(sae, cfg, recipe, opt, ema, dead, var0)
    for _ in range(3):
        out = state.step(x)
        assert torch.isfinite(out.loss)
        ones = torch.ones(sae.cfg.n_latents, dtype=torch.float64)
        torch.testing.assert_close(sae.W_dec.norm(dim=1), ones, rtol=0, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(2, 30), st.integers(0, 1000))
def test_gradient_projection_is_orthogonal_and_idempotent(n, d, seed):
    sae = TopKSAE(SAEConfig(d_model=d, n_latents=n, k=1), seed=seed, dtype=torch.float64)
    sae.W_dec.grad = torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    project_decoder_grad_(sae)
    once = sae.W_dec.grad.clone()
    torch.testing.assert_close((once * sae.W_dec).sum(1), torch.zeros(n, dtype=torch.float64), rtol=0, atol=1e-12)
    project_decoder_grad_(sae)
    torch.testing.assert_close(sae.W_dec.grad, once, rtol=0, atol=1e-12)
    with torch.no_grad(): sae.W_dec.mul_(3.0)
    unit_norm_decoder_(sae)
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(n, dtype=torch.float64))
