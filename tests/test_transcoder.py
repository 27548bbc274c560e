"""The TopK transcoder: its prediction and loss against the formulas written out, the sparse kernels against plain
autograd, and splicing it in place of an MLP."""
import pytest
import torch

from topk_sae.downstream import splice
from topk_sae.lm import load_model
from topk_sae.losses import LossInputs
from topk_sae.transcoder import PairSource, Transcoder, TranscoderConfig, mlp_hooks

def _tc(skip=True, seed=0):
    torch.manual_seed(seed)
    tc = Transcoder(TranscoderConfig(d_model=16, n_latents=48, k=4, skip=skip), seed=seed)
    with torch.no_grad():
        tc.b_enc.normal_(0, 0.1)
        if skip: tc.W_skip.normal_(0, 0.1)
    pairs = torch.randn(300, 32) * torch.cat([torch.ones(16), 3 * torch.ones(16)])
    return tc.init_from_data_(pairs), pairs


def test_prediction_and_loss_follow_the_written_out_formulas():
    tc, pairs = _tc()
    x, y = pairs[:, :16], pairs[:, 16:]
    xc = x - x.mean(-1, keepdim=True)
    x_n = xc / (xc.std(-1, keepdim=True) + 1e-5)
    pre = x_n @ tc.W_enc + tc.b_enc  # no b_dec subtraction: b_dec is the output's bias
    keep = pre >= pre.topk(4, dim=-1).values[:, -1:]
    z = torch.where(keep, pre.relu(), torch.zeros_like(pre))
    y_n = z @ tc.W_dec + tc.b_dec + x_n @ tc.W_skip
    torch.testing.assert_close(tc(x), y_n * tc.out_scale, rtol=1e-5, atol=1e-5)
    assert torch.isclose(tc.out_scale, pairs[:, 16:].pow(2).mean().sqrt(), rtol=1e-5)  # the target's RMS
    y_t = y / tc.out_scale
    torch.testing.assert_close(tc.var_out, (y_t - y_t.mean(0)).pow(2).mean(), rtol=1e-4, atol=1e-6)
    pair_n, _ = tc.normalize(pairs)
    out = tc.training_loss(pair_n, LossInputs(var0=123.0, impl="dense"))  # var0 is the pairs'; not this loss's
    torch.testing.assert_close(out.fvu, ((y_n - y_t) ** 2).mean() / tc.var_out, rtol=1e-4, atol=1e-6)


def test_the_sparse_kernels_match_plain_autograd_with_auxk():
    grads = {}
    for impl in ("sparse", "dense"):
        tc, pairs = _tc()
        pair_n, _ = tc.normalize(pairs)
        dead = torch.zeros(48, dtype=torch.bool); dead[::3] = True
        out = tc.training_loss(pair_n, LossInputs(var0=1.0, dead=dead, k_aux=6, aux_coef=0.5, impl=impl))
        out.loss.backward()
        grads[impl] = (out.loss.detach(), {n: p.grad.clone() for n, p in tc.named_parameters()})
    torch.testing.assert_close(grads["sparse"][0], grads["dense"][0])
    for name, g in grads["dense"][1].items():
        torch.testing.assert_close(grads["sparse"][1][name], g, rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


def test_splicing_replaces_the_mlp_output_with_the_prediction():
    model = load_model("tiny")
    hooks = mlp_hooks(1)
    tokens = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    tc = Transcoder(TranscoderConfig(d_model=64, n_latents=128, k=8, hook=hooks[0], out_hook=hooks[1]))
    tc.init_from_data_(PairSource(model, hooks, tokens, batch_size=2, buffer_tokens=64).sample(16))
    seen = {}
    def grab(name):
        def fn(act, hook): seen[name] = act.detach().clone()
        return fn
    with splice(model, tc, hooks[1]), model.hooks(fwd_hooks=[(hooks[0], grab("in"))]):
        model.add_hook(hooks[1], grab("out"))  # runs after the splice's own hook: sees what the model reads
        try: model(tokens)
        finally: model.reset_hooks()
    expected = tc(seen["in"][:, 1:])
    torch.testing.assert_close(seen["out"][:, 1:], expected, rtol=1e-5, atol=1e-5)


def test_the_latent_and_prompt_inspectors_open_a_transcoder():
    "Its rows read the MLP's input; its ablation runs at the MLP's output; steering says it needs an SAE."
    from topk_sae.data import SOTU_SLICE, load_corpus, make_contexts
    from topk_sae.widgets import LatentInspector, PromptInspector
    model = load_model("tiny")
    hooks = mlp_hooks(0)
    ctx = make_contexts(load_corpus(SOTU_SLICE)[:4], model.tokenizer, 33, progress=False)[:48]
    tc = Transcoder(TranscoderConfig(d_model=64, n_latents=128, k=6, hook=hooks[0], out_hook=hooks[1]))
    tc.init_from_data_(PairSource(model, hooks, ctx[:16], batch_size=16, buffer_tokens=512).sample(512))
    inspector = LatentInspector(tc, model, ctx[16:], progress=False)
    assert inspector.index.hook == hooks[0]
    data = inspector.show_rank(0)
    assert data is not None and data.n_fires > 0 and "tks-msg" not in inspector.message.value
    steps = inspector.show_ablation()
    assert steps and all(abs(s.d_logprob_next) < 50 for s in steps)
    assert inspector.steer("The Congress shall", 1.0) is None and "needs an SAE" in inspector.steer_message.value
    prompts = PromptInspector(inspector)
    shown = prompts.run("We the People of the United States")
    assert shown is not None and len(prompts.select_token(1)) <= 6


def _tiny_transcoder(n_contexts=48):
    from topk_sae.data import SOTU_SLICE, load_corpus, make_contexts
    model = load_model("tiny")
    hooks = mlp_hooks(0)
    ctx = make_contexts(load_corpus(SOTU_SLICE)[:4], model.tokenizer, 33, progress=False)[:n_contexts]
    tc = Transcoder(TranscoderConfig(d_model=64, n_latents=128, k=6, hook=hooks[0], out_hook=hooks[1]))
    tc.init_from_data_(PairSource(model, hooks, ctx[:16], batch_size=16, buffer_tokens=512).sample(512))
    return model, hooks, ctx[16:], tc


@pytest.mark.filterwarnings("ignore:every probe task")  # 32 held-out contexts: too few positives for the probes
def test_evaluate_measures_a_transcoder_as_a_replacement_of_its_mlp():
    "FVU of the MLP output, delta CE of the splice at the out hook, shrinkage skipped with a reason, bad hooks refused."
    from topk_sae.activations import harvest_hooks
    from topk_sae.downstream import downstream_loss
    from topk_sae.evaluate import PARTS, EvalConfig, evaluate
    from topk_sae.transcoder import transcoder_fvu
    model, hooks, held, tc = _tiny_transcoder()
    report = evaluate(model, tc, hooks[0], held, EvalConfig.tiny())
    pairs = harvest_hooks(model, list(hooks), held, progress=False)
    fvu = transcoder_fvu(tc, torch.cat([pairs[hooks[0]], pairs[hooks[1]]], 1))
    assert abs(report.activations.fvu - fvu) < 1e-6
    spliced = downstream_loss(model, tc, hooks[1], held[:8], progress=False)  # EvalConfig.tiny: 8 contexts
    assert abs(report.downstream.delta_ce - spliced.delta_ce) < 1e-6
    assert set(report.results) == set(PARTS) - {"shrinkage"} and "transcoder" in report.skipped["shrinkage"]
    assert report.to_json()["skipped"] == report.skipped and len(report.ablation.per_ablation) > 0
    at_out = evaluate(model, tc, hooks[1], held, EvalConfig.tiny(parts=["activations"]))
    assert at_out.activations.fvu == report.activations.fvu
    with pytest.raises(ValueError, match="pass one of them as hook"):
        evaluate(model, tc, "blocks.0.hook_resid_post", held, EvalConfig.tiny())
    unnamed = Transcoder(TranscoderConfig(d_model=64, n_latents=128, k=6))
    with pytest.raises(ValueError, match="set both"):
        evaluate(model, unnamed, hooks[0], held, EvalConfig.tiny())


def test_saebench_refuses_a_transcoder_and_the_dashboard_names_it():
    import tempfile
    from pathlib import Path

    from topk_sae.saebench import to_saebench
    from topk_sae.widgets import export_dashboard
    model, _, held, tc = _tiny_transcoder(32)
    with pytest.raises(TypeError, match="predicts 'blocks.0.hook_mlp_out'"):
        to_saebench(tc, "tiny", hook_layer=0)
    with tempfile.TemporaryDirectory() as d:
        page = export_dashboard(Path(d)/"dash.html", tc, model, held, n_latents=2, ablation=False,
                                progress=False).read_text()
    assert "128-latent Transcoder (k = 6)" in page and "TopK SAE" not in page
