"""load_model's hub code path, exercised offline: a model folder written by save_pretrained goes through
the same TransformerBridge.boot_transformers call that a hub name does."""
import pytest
import torch

from topk_sae.activations import harvest, run_to_hook
from topk_sae.lm import byte_tokenizer, load_model, model_name

@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=256, n_positions=64, n_embd=32, n_layer=2, n_head=2)).save_pretrained(folder)
    tok = byte_tokenizer()
    tok.add_special_tokens({"eos_token": "<|endoftext|>"})
    tok.save_pretrained(folder)
    return folder


def test_a_local_folder_loads_like_a_hub_model(gpt2_folder):
    model = load_model(str(gpt2_folder))
    assert model_name(model) == str(gpt2_folder)
    assert (model.cfg.n_layers, model.cfg.d_model) == (2, 32)
    toks = torch.randint(0, 256, (2, 16))
    with torch.inference_mode(): _, cache = model.run_with_cache(toks, names_filter="blocks.0.hook_resid_post")
    torch.testing.assert_close(run_to_hook(model, toks, "blocks.0.hook_resid_post"), cache["blocks.0.hook_resid_post"])
    assert harvest(model, "blocks.1.hook_resid_post", toks, progress=False).shape == (2 * 15, 32)


def test_an_unreachable_hub_name_says_what_to_do():
    with pytest.raises(OSError, match="Without hub access use load_model\\('smollm2-135m'\\)"):
        load_model("no-such-org/no-such-model-topk-sae-test")


@pytest.mark.slow
def test_a_local_gpt2_folder_harvests_trains_and_evaluates(gpt2_folder, tmp_path):
    """The whole pipeline on a model loaded the way a hub name is: harvest to a store, train from it, evaluate."""
    from topk_sae.evaluate import EvalConfig, evaluate
    from topk_sae.model import SAEConfig, TopKSAE
    from topk_sae.store import harvest_to_store
    from topk_sae.train import TrainConfig, train
    model = load_model(str(gpt2_folder))
    hook = "blocks.1.hook_resid_post"
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 256, (96, 33), generator=g)
    store = harvest_to_store(model, hook, tokens, tmp_path / "store", shard_tokens=1024, progress=False)
    assert store.manifest.model == str(gpt2_folder)
    sae = TopKSAE(SAEConfig(d_model=32, n_latents=128, k=4, hook=hook, model_name=str(gpt2_folder)))
    res = train(sae, store.check(sae, model), TrainConfig.tiny(n_tokens=4096, batch_tokens=256, init_tokens=1024))
    assert res.history.fvu.iloc[-1] < res.history.fvu.iloc[0]
    report = evaluate(model, res.sae, hook, torch.randint(0, 256, (16, 33), generator=g),
                      EvalConfig.tiny(parts=("activations", "downstream", "ablation")))
    assert 0 <= report.acts.fvu < 1.5 and report.downstream is not None
