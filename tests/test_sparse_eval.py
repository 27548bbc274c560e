"""Probe loss and N2G read latents from the sparse code: equal to the dense `(tok, n_latents)` computation they
replaced (the reference, written out here), and never calling `sae.encode`, which builds that dense code."""
import pandas as pd
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from topk_sae import explain
from topk_sae.activations import harvest, run_to_hook
from topk_sae.data import scored_per_context
from topk_sae.explain import explainability
from topk_sae.model import TopKOut, to_dense
from topk_sae.probes import (
    best_probes,
    candidates,
    code_candidates,
    code_columns,
    label_tokens,
    probe_loss,
    sparse_codes,
)

TOL = 1e-6  # largest difference allowed between a loss from the sparse code and from the dense one


@pytest.fixture(scope="module")
def setup(tiny_sae):
    "The tiny model, its SAE, 300 contexts and their activations at the SAE's hook."
    ctx = tiny_sae.contexts[:300]
    return tiny_sae.model, tiny_sae.sae, ctx, harvest(tiny_sae.model, tiny_sae.hook, ctx, progress=False)


def _code(seed: int, tok: int, n: int, k: int, padded: float) -> TopKOut:
    "A random code: TopK of random pre-activations, ReLU'd, with a share `padded` of entries turned into padding."
    g = torch.Generator().manual_seed(seed)
    v, i = torch.randn(tok, n, generator=g).topk(k, dim=1)
    pad = torch.rand(tok, k, generator=g) < padded
    return TopKOut(torch.where(pad, 0.0, v.relu()), torch.where(pad, 0, i))


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**16), st.integers(3, 60), st.integers(1, 40), st.integers(1, 6), st.integers(1, 12),
       st.sampled_from([0.0, 0.3]))
def test_code_candidates_and_columns_equal_the_dense_code(seed, tok, n, k, m, padded):
    k = min(k, n)
    top = _code(seed, tok, n, k, padded)
    y = torch.rand(tok, generator=torch.Generator().manual_seed(seed + 1)) < 0.4
    assume(0 < int(y.sum()) < tok)
    dense = to_dense(top, n)
    assert torch.equal(code_candidates(top, y, m, n), candidates(dense, y, m))  # the same order, ties included
    m = min(m, n)
    latents = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 2))[:m]
    assert torch.equal(code_columns(top, latents), dense[:, latents])


def test_best_probes_on_a_sparse_code_needs_the_number_of_latents():
    labels = pd.DataFrame({"task": [True, False] * 10})
    with pytest.raises(ValueError, match="needs n_features"):
        best_probes(_code(0, 20, 8, 2, 0.0), labels, torch.arange(20) % 2 == 0)


def test_probe_loss_equals_the_dense_computation(setup):
    "`probe_loss` (sparse code) picks the latents and losses that best_probes on `sae.encode(acts)` picks."
    model, sae, ctx, acts = setup
    pl = probe_loss(sae, acts, ctx, model.tokenizer)
    assert len(pl.per_task) >= 3  # enough tasks to compare
    per = scored_per_context(ctx.shape[1])
    train = (torch.rand(len(ctx), generator=torch.Generator().manual_seed(0)) < 0.5).repeat_interleave(per)
    labels = label_tokens(ctx, model.tokenizer)
    dense = best_probes(sae.encode(acts), labels, train)
    dense = dense[~dense.skipped].reset_index(drop=True)
    assert pl.per_task.latent.tolist() == dense.feature.tolist()
    assert (pl.per_task.loss - dense.loss).abs().max() <= TOL
    for n_candidates in (1, 4, 200):  # 200: every latent is a candidate
        got = best_probes(sparse_codes(sae, acts), labels, train, n_candidates, n_features=sae.cfg.n_latents)
        want = best_probes(sae.encode(acts), labels, train, n_candidates)
        assert got.feature.fillna(-1).tolist() == want.feature.fillna(-1).tolist()
        assert (got.loss - want.loss).abs().max() <= TOL


def _dense_last_token_latents(model, sae, hook, seqs, latents, batch_size=256):
    "The reference: the dense code of each sequence's last token, then its own latent's column."
    out = []
    for s, lat in zip(seqs.split(batch_size), latents.split(batch_size)):
        z = sae.encode(run_to_hook(model, s, hook)[:, -1].to(sae.device))
        out.append(z.gather(1, lat[:, None].to(z.device))[:, 0].cpu())
    return torch.cat(out) if out else torch.zeros(0)


def test_explainability_equals_the_dense_computation(setup, tiny_sae, monkeypatch):
    "N2G's explanations and scores are the same when pattern activations come from the dense code."
    model, sae, ctx, acts = setup
    sparse = explainability(model, sae, tiny_sae.hook, ctx, acts, n_latents=8, progress=False)
    seqs, lat = ctx[:40, :5], torch.arange(40) % sae.cfg.n_latents
    want = _dense_last_token_latents(model, sae, tiny_sae.hook, seqs, lat, batch_size=16)
    assert want.count_nonzero() > 0 and torch.equal(explain.last_token_latents(model, sae, tiny_sae.hook, seqs, lat,
                                                                                batch_size=16), want)
    monkeypatch.setattr(explain, "last_token_latents", _dense_last_token_latents)
    dense = explainability(model, sae, tiny_sae.hook, ctx, acts, n_latents=8, progress=False)
    assert sparse.explanations == dense.explanations
    pd.testing.assert_frame_equal(sparse.per_latent, dense.per_latent, check_exact=True)


def test_probes_and_n2g_never_build_the_dense_code(setup, tiny_sae, monkeypatch):
    "With `sae.encode` broken, probe loss and N2G still run: they read only the sparse code."
    model, sae, ctx, acts = setup
    def refuse(*args, **kwargs): raise AssertionError("sae.encode builds a (tok, n_latents) code")
    monkeypatch.setitem(vars(sae), "encode", refuse)  # an instance attribute, removed afterwards
    assert len(probe_loss(sae, acts, ctx, model.tokenizer).per_task)
    assert len(explainability(model, sae, tiny_sae.hook, ctx, acts, n_latents=4, progress=False).per_latent)
