"""Ablation sparsity: every engine equals the one-forward-per-ablation reference, on a Hugging Face GPT-2
(through the bridge, with its KV cache), on the TransformerLens-native tiny model, and at hooks that are
not between blocks; bad input is refused before any work."""
import pytest
import torch

from topk_sae.ablation import ablation_sparsity
from topk_sae.activations import harvest, run_to_hook
from topk_sae.downstream import downstream_loss
from topk_sae.lm import byte_tokenizer, load_model
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.tail import TailEngine, make_engine
from topk_sae.train import TrainConfig, train

@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel
    folder = tmp_path_factory.mktemp("gpt2-abl")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=256, n_positions=64, n_embd=48, n_layer=3, n_head=4)).save_pretrained(folder)
    tok = byte_tokenizer()
    tok.add_special_tokens({"eos_token": "<|endoftext|>"})
    tok.save_pretrained(folder)
    return load_model(str(folder))


def _sae_for(model, hook, d, seed=0):
    tokens = torch.randint(0, 256, (80, 32), generator=torch.Generator().manual_seed(seed))
    acts = harvest(model, hook, tokens, progress=False)
    return train(TopKSAE(SAEConfig(d_model=d, n_latents=96, k=6)), acts, TrainConfig.tiny(n_tokens=4096, lr=3e-3)).sae


def _compare(model, sae, hook, method):
    ctx = torch.randint(0, 256, (5, 32), generator=torch.Generator().manual_seed(7))
    kw = {"T": 8, "n_positions": 4, "n_channels": 5, "progress": False}
    fast = ablation_sparsity(model, sae, hook, ctx, method=method, **kw)
    ref = ablation_sparsity(model, sae, hook, ctx, method="reference", **kw)
    assert len(fast.per_ablation) == len(ref.per_ablation) > 0
    def close(a, b): torch.testing.assert_close(torch.tensor(a.values), torch.tensor(b.values), rtol=2e-4, atol=1e-6)
    close(fast.per_ablation.sparsity, ref.per_ablation.sparsity)
    close(fast.channel.share_at_t, ref.channel.share_at_t)
    return fast


@pytest.mark.parametrize("method", ["auto", "prefix", "hooked"])
def test_gpt2_engines_equal_the_reference(gpt2, method):
    sae = _sae_for(gpt2, "blocks.1.hook_resid_post", 48)
    res = _compare(gpt2, sae, "blocks.1.hook_resid_post", method)
    assert res.method == {"auto": res.method, "prefix": "prefix", "hooked": "hooked"}[method]


def test_gpt2_uses_a_kv_cache_that_reproduces_whole_prefixes(gpt2):
    engine = make_engine(gpt2, "blocks.0.hook_resid_post", torch.randint(0, 256, (32,)))
    assert isinstance(engine, TailEngine)
    deltas = torch.randn(3, 48)
    kv, prefix = engine.effects(10, 8, deltas, kv=True), engine.effects(10, 8, deltas, kv=False)
    if engine.use_kv: torch.testing.assert_close(kv, prefix, rtol=1e-4, atol=1e-5)


def test_hooks_inside_a_block_use_the_hooked_engine(gpt2):
    sae = _sae_for(gpt2, "blocks.1.hook_mlp_out", 48)
    assert _compare(gpt2, sae, "blocks.1.hook_mlp_out", "auto").method == "hooked"


def test_tiny_native_model(tiny_model):
    sae = _sae_for(tiny_model, "blocks.0.hook_resid_post", 64)
    assert _compare(tiny_model, sae, "blocks.0.hook_resid_post", "auto").method == "prefix"


def test_bad_input(tiny_model):
    sae, ctx = TopKSAE(SAEConfig(d_model=64, n_latents=96, k=6)), torch.randint(0, 256, (3, 32))
    hook = "blocks.0.hook_resid_post"
    with pytest.raises(ValueError, match="T=32 is longer"): ablation_sparsity(tiny_model, sae, hook, ctx, T=32)
    with pytest.raises(ValueError, match="position t=0 is out of range"):
        ablation_sparsity(tiny_model, sae, hook, ctx, T=8, positions=[(0, 0)])
    with pytest.raises(ValueError, match="closest"): ablation_sparsity(tiny_model, sae, "blocks.0.hook_resid_pots", ctx)
    with pytest.raises(ValueError, match="unknown method"):
        ablation_sparsity(tiny_model, sae, hook, ctx, method="fast", progress=False)
    with pytest.raises(ValueError, match="width 64 but the SAE reads d_model=16"):
        ablation_sparsity(tiny_model, TopKSAE(SAEConfig.tiny()), hook, ctx, T=8, progress=False)


def test_positions_without_active_latents_are_counted_not_nan(tiny_model):
    sae = TopKSAE(SAEConfig(d_model=64, n_latents=96, k=6))
    with torch.no_grad(): sae.b_enc.fill_(-1e6)  # no pre-activation is ever positive
    with pytest.warns(UserWarning, match="no latent ablation had an effect"):
        res = ablation_sparsity(tiny_model, sae, "blocks.0.hook_resid_post", torch.randint(0, 256, (3, 32)), T=8,
                                n_positions=3, progress=False)
    assert res.skipped["no_active_latent"] == 3 and len(res.per_ablation) == 0
    assert res.mean != res.mean and res.channel_mean == res.channel_mean  # NaN only where there is nothing to average


def test_channel_rows_hold_the_hooked_activation_at_their_own_position(tiny_sae):
    "The channel baseline zeroes x[t, c]: its rows carry that value, read independently from the hooked forward pass."
    ctx = tiny_sae.contexts[300:302]
    res = ablation_sparsity(tiny_sae.model, tiny_sae.sae, tiny_sae.hook, ctx, T=4, positions=[(0, 5), (1, 9)],
                            n_channels=6, progress=False)
    acts = run_to_hook(tiny_sae.model, ctx, tiny_sae.hook)
    want = [acts[r.context, r.position, r.channel].item() for r in res.channel.itertuples()]
    assert len(want) == 12 and torch.allclose(torch.tensor(want), torch.tensor(res.channel.value.tolist()), atol=1e-5)


def test_the_mean_ablation_baseline_averages_positions_1_onward(tiny_sae):
    "ce_mean against a hand-made mean-ablation: the mean of the harvested activations (position 0 left out)."
    ctx = tiny_sae.contexts[300:304]
    model, hook = tiny_sae.model, tiny_sae.hook
    mean = harvest(model, hook, ctx, progress=False).mean(0)

    def put_mean(act, hook):
        act = act.clone()
        act[:, 1:] = mean
        return act
    with model.hooks(fwd_hooks=[(hook, put_mean)]): logits = model(ctx)
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ctx[:, 1:].flatten())
    got = downstream_loss(model, tiny_sae.sae, hook, ctx, progress=False).ce_mean
    assert abs(got - ce.item()) < 1e-4
