"""The evaluation suite: splice edits, explanation matching against a brute-force loop, probe labels
against the text, strict JSON, the keys other modules read, the old flat EvalConfig keywords, and bad
input for evaluate."""
import json
import math
import warnings
from dataclasses import asdict

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from topk_sae.activations import harvest
from topk_sae.core import save_json
from topk_sae.demo import SUMMARY_KEYS
from topk_sae.downstream import splice
from topk_sae.evaluate import FLAT_FIELDS, METRICS, PARTS, AblationEval, EvalConfig, ExplainEval, ProbeEval, evaluate
from topk_sae.explain import matches
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.probes import PROBE_TASKS, label_tokens
from topk_sae.sweep import FULL_EVAL_REPORT_KEYS

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def setup(tiny_sae):
    return tiny_sae.model, tiny_sae.sae, tiny_sae.contexts


@pytest.fixture(scope="module")
def report(setup):
    model, sae, ctx = setup
    return evaluate(model, sae, HOOK, ctx[300:360], EvalConfig.tiny())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=1, max_size=4).map(tuple),
                min_size=1, max_size=3),
       st.integers(0, 2**16))
def test_matches_equals_a_brute_force_loop(patterns, seed):
    patterns = [p[:-1] + ((p[-1] if p[-1] is not None else 0),) for p in patterns]  # the last token is always concrete
    toks = torch.randint(0, 4, (3, 9), generator=torch.Generator().manual_seed(seed))
    want = torch.zeros_like(toks, dtype=torch.bool)
    for b in range(toks.shape[0]):
        for pos in range(toks.shape[1]):
            for pat in patterns:
                l = len(pat)
                if pos >= l - 1 and all(t is None or toks[b, pos - l + 1 + j] == t for j, t in enumerate(pat)):
                    want[b, pos] = True
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


def test_report_json_is_strict_and_complete(report, tmp_path):
    save_json(report.to_json(), tmp_path / "m.json")
    data = json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    for key in ("fvu", "delta_ce", "ablation_sparsity", "ablation_channels", "n2g_precision", "shrinkage_ratio"):
        assert key in data["values"] and key in data["labels"]
    assert math.isclose(data["values"]["delta_ce"], report.downstream.delta_ce)
    assert data["labels"]["delta_ce"] == "delta CE" and set(data["seconds"]) == set(PARTS)
    assert set(report.figures()) >= {"activations", "progressive", "ablation", "explain"}


def test_every_part_has_rows_with_unique_keys_and_the_keys_others_read(report):
    "A renamed label cannot drop a line elsewhere: the sweep and the demo read values by key, and these keys exist."
    keys = [r.key for r in report.rows()]
    assert len(keys) == len(set(keys)) and len(report.table()) == len(keys)
    assert {name for name, res in report.results.items() if METRICS[name].rows(res)} == set(PARTS)
    assert set(FULL_EVAL_REPORT_KEYS) | set(SUMMARY_KEYS) <= set(report.values())


def test_evaluate_parts_can_be_chosen(setup):
    model, sae, ctx = setup
    report = evaluate(model, sae, HOOK, ctx[300:330], EvalConfig.tiny(parts=("activations", "downstream")))
    assert report.ablation is None and report.probes is None and set(report.seconds) == {"activations", "downstream"}
    assert report.acts is report.activations


def test_flat_keywords_still_work_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="ablation.positions"):
        flat = EvalConfig(ablation_positions=256, explain_max_len=3, probe_candidates=4)
    assert flat == EvalConfig(ablation=AblationEval(positions=256), explain=ExplainEval(max_len=3),
                              probes=ProbeEval(candidates=4))
    every = {"batch_size": 2, "downstream_contexts": 3, "T": 5, "ablation_positions": 6, "ablation_channels": 7,
             "probe_contexts": 8, "probe_candidates": 9, "explain_contexts": 10, "explain_latents": 11,
             "explain_examples": 12, "explain_max_len": 13, "shrinkage_tokens": 14, "progressive_ks": [4, 8]}
    assert set(every) == set(FLAT_FIELDS)
    with pytest.warns(DeprecationWarning):
        cfg = EvalConfig.from_dict({**every, "parts": ["ablation"], "seed": 1})
    for old, (part, name) in FLAT_FIELDS.items():
        want = tuple(every[old]) if old == "progressive_ks" else every[old]
        assert getattr(getattr(cfg, part), name) == want, old
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the nested form does not warn
        assert EvalConfig.from_dict(json.loads(json.dumps(asdict(cfg)))) == cfg


def test_evaluate_bad_input(setup):
    model, sae, ctx = setup
    with pytest.raises(ValueError, match="closest"): evaluate(model, sae, "blocks.0.hook_resid_pst", ctx[:4])
    with pytest.raises(ValueError, match="need"):
        evaluate(model, TopKSAE(SAEConfig(d_model=32, n_latents=64, k=4)), HOOK, ctx[:4], EvalConfig.tiny())
    with pytest.raises(ValueError, match="T=40 is longer"):
        evaluate(model, sae, HOOK, ctx[:4], EvalConfig.tiny(ablation=AblationEval(T=40), parts=("ablation",)))
    with pytest.raises(ValueError, match="unknown parts"): EvalConfig(parts=("ablation", "vibes"))
    with pytest.raises(ValueError, match="unknown fields"): EvalConfig.from_dict({"ablation_window": 4})
