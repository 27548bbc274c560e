"""The evaluation suite: splice edits, explanation matching against a brute-force loop, probe labels
against the text, strict JSON, and bad input for evaluate."""
import json, math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from topk_sae.core import save_json, load_json
from topk_sae.data import SOTU_SLICE, load_corpus, make_contexts
from topk_sae.downstream import downstream_loss, splice
from topk_sae.evaluate import EvalConfig, evaluate
from topk_sae.explain import matches
from topk_sae.activations import harvest
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.probes import PROBE_TASKS, label_tokens
from topk_sae.train import TrainConfig, train

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def setup(tiny_model, slice_docs):
    ctx = make_contexts(slice_docs, tiny_model.tokenizer, ctx_len=32, progress=False)
    acts = harvest(tiny_model, HOOK, ctx[:300], progress=False)
    sae = train(TopKSAE(SAEConfig(d_model=64, n_latents=256, k=8)), acts, TrainConfig.tiny(n_tokens=16_000, lr=3e-3)).sae
    return tiny_model, sae, ctx


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=1, max_size=4).map(tuple), min_size=1, max_size=3),
       st.integers(0, 2**16))
def test_matches_equals_a_brute_force_loop(patterns, seed):
    patterns = [p[:-1] + ((p[-1] if p[-1] is not None else 0),) for p in patterns]  # the last token is always concrete
    toks = torch.randint(0, 4, (3, 9), generator=torch.Generator().manual_seed(seed))
    want = torch.zeros_like(toks, dtype=torch.bool)
    for b in range(toks.shape[0]):
        for pos in range(toks.shape[1]):
            for pat in patterns:
                l = len(pat)
                if pos >= l - 1 and all(t is None or toks[b, pos - l + 1 + j] == t for j, t in enumerate(pat)): want[b, pos] = True
    assert torch.equal(matches(patterns, toks), want)


def test_probe_labels_follow_the_text(tiny_model):
    toks = torch.tensor([tiny_model.tokenizer('x In 1999 we paid $5 (a lot).', add_special_tokens=False).input_ids])
    labels = label_tokens(toks, tiny_model.tokenizer)
    text = [tiny_model.tokenizer.decode([i]) for i in toks[0, 1:].tolist()]
    pick = lambda col: "".join(t for t, y in zip(text, labels[col]) if y)
    assert pick("year") == "1999" and pick("money") == "$5" and pick("inside_parens") == "(a lot)"
    assert pick("digit") == "19995" and set(labels.columns) == {t.name for t in PROBE_TASKS}


def test_splice_edit_of_one_latent_changes_only_through_that_latent(setup):
    model, sae, ctx = setup
    toks = ctx[:4]
    with torch.inference_mode():
        clean = model(toks)
        with splice(model, sae, HOOK, error_term=True, edit=lambda z: z): same = model(toks)
        z = sae.encode(harvest(model, HOOK, toks, progress=False))
        busiest = int((z > 0).sum(0).argmax())
        def drop(z, i=busiest): z = z.clone(); z[..., i] = 0; return z
        with splice(model, sae, HOOK, error_term=True, edit=drop): dropped = model(toks)
    torch.testing.assert_close(same, clean, rtol=1e-4, atol=1e-4)
    assert (dropped - clean).abs().max() > 1e-4


def test_report_json_is_strict_and_complete(setup, tmp_path):
    model, sae, ctx = setup
    report = evaluate(model, sae, HOOK, ctx[300:360], EvalConfig.tiny())
    save_json(report.to_json(), tmp_path / "m.json")
    data = json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    for key in ("FVU", "delta CE", "ablation sparsity (latents)", "ablation sparsity (channels)", "N2G precision", "shrinkage ratio"):
        assert key in data["table"]
    assert math.isclose(data["table"]["delta CE"], report.downstream.delta_ce)
    assert set(report.figures()) >= {"density", "progressive", "ablation", "explain"}


def test_evaluate_parts_can_be_chosen(setup):
    model, sae, ctx = setup
    report = evaluate(model, sae, HOOK, ctx[300:330], EvalConfig.tiny(parts=("activations", "downstream")))
    assert report.ablation is None and report.probes is None and set(report.seconds) == {"activations", "downstream"}


def test_evaluate_bad_input(setup):
    model, sae, ctx = setup
    with pytest.raises(ValueError, match="closest"): evaluate(model, sae, "blocks.0.hook_resid_pst", ctx[:4])
    with pytest.raises(ValueError, match="need"): evaluate(model, TopKSAE(SAEConfig(d_model=32, n_latents=64, k=4)), HOOK, ctx[:4], EvalConfig.tiny())
    with pytest.raises(ValueError, match="T=40 is longer"): evaluate(model, sae, HOOK, ctx[:4], EvalConfig.tiny(T=40, parts=("ablation",)))
    with pytest.raises(ValueError, match="unknown parts"): EvalConfig(parts=("ablation", "vibes"))
