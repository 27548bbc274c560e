"""Bad input gets a clear error that says what to do, and nothing already saved is lost."""
import os, warnings
from pathlib import Path

import pytest
import torch

from topk_sae.activations import harvest
from topk_sae.cli import DemoConfig
from topk_sae.core import save_json
from topk_sae.data import Document, load_corpus, make_contexts, split_documents
from topk_sae.lm import check_hook
from topk_sae.metrics import fvu
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.train import TrainConfig, train


@pytest.mark.parametrize("k,n,message", [(0, 64, "positive integer"), (-3, 64, "positive integer"), (65, 64, "k=65 is larger than n_latents=64")])
def test_k_out_of_range(k, n, message):
    with pytest.raises(ValueError, match=message): SAEConfig(d_model=16, n_latents=n, k=k)


def test_test_time_k_out_of_range():
    sae = TopKSAE(SAEConfig.tiny())
    with pytest.raises(ValueError, match="k=0 is out of range"): sae.encode(torch.randn(3, 16), k=0)


def test_d_model_mismatch():
    sae = TopKSAE(SAEConfig.tiny(hook="blocks.3.hook_resid_post"))
    with pytest.raises(ValueError, match=r"width 12 but this SAE reads d_model=16 \(from blocks.3.hook_resid_post\)"): sae(torch.randn(2, 12))
    with pytest.raises(ValueError, match="d_model=12 but the SAE reads d_model=16"): train(sae, torch.randn(500, 12), TrainConfig.tiny())
    with pytest.raises(ValueError, match="width 12"): fvu(sae, torch.randn(50, 12))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_activations(bad):
    acts = torch.randn(600, 16)
    acts[7, 2] = bad
    with pytest.raises(ValueError, match="NaN|Inf"): train(TopKSAE(SAEConfig.tiny()), acts, TrainConfig.tiny())
    with pytest.raises(ValueError, match="NaN|Inf"): fvu(TopKSAE(SAEConfig.tiny()), acts)


def test_unknown_hook_lists_close_matches(tiny_model):
    with pytest.raises(ValueError, match=r"no hook 'blocks.1.hook_resid_pst'; closest: \['blocks.1.hook_resid_post'"):
        check_hook(tiny_model, "blocks.1.hook_resid_pst")
    with pytest.raises(ValueError, match="closest"):
        harvest(tiny_model, "blocks.9.hook_resid_post", torch.zeros(2, 8, dtype=torch.long))


def test_empty_and_unusable_corpora(tmp_path, tiny_model):
    with pytest.raises(ValueError, match="no documents with text"): load_corpus(tmp_path)
    (tmp_path / "a.txt").write_text("")
    with pytest.raises(ValueError, match="no documents with text"): load_corpus(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"): load_corpus(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="at least 2 documents"): split_documents([Document("a", "x")])
    with pytest.raises(ValueError, match="no document is 64 tokens long"): make_contexts([Document("a", "too short")], tiny_model.tokenizer)


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="SAE config not found"): TopKSAE.load(tmp_path)
    sae = TopKSAE(SAEConfig.tiny())
    sae.save(tmp_path)
    (tmp_path / "sae.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="corrupt or truncated"): TopKSAE.load(tmp_path)
    (tmp_path / "cfg.json").write_text("{not json")
    with pytest.raises(ValueError, match="SAE config .* is corrupt"): TopKSAE.load(tmp_path)
    save_json({"d_model": 16, "n_latents": 64, "k": 4, "normalise": "layernorm"}, tmp_path / "cfg.json")
    with pytest.raises(ValueError, match=r"unknown fields \['normalise'\]"): TopKSAE.load(tmp_path)


def test_weights_that_do_not_fit_the_config(tmp_path):
    TopKSAE(SAEConfig.tiny(n_latents=32)).save(tmp_path)
    save_json({"format": "topk_sae.TopKSAE/1", **SAEConfig.tiny().to_dict()}, tmp_path / "cfg.json")
    with pytest.raises(ValueError, match="do not match the config"): TopKSAE.load(tmp_path)


def test_corrupt_activation_cache_is_harvested_again(tmp_path, tiny_model, slice_docs):
    ctx = make_contexts(slice_docs[:1], tiny_model.tokenizer, progress=False)[:6]
    f = tmp_path / "acts.safetensors"
    first = harvest(tiny_model, "blocks.1.hook_resid_post", ctx, cache=f, progress=False)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.warns(UserWarning, match="unusable, it is corrupt"):
        again = harvest(tiny_model, "blocks.1.hook_resid_post", ctx, cache=f, progress=False)
    assert torch.equal(first, again)
    with pytest.warns(UserWarning, match="harvested from different inputs"):
        other = harvest(tiny_model, "blocks.1.hook_resid_post", ctx[:3], cache=f, progress=False)  # new inputs, same file
    assert other.shape[0] == 3 * 63


def test_broken_model_cache_is_rebuilt(isolated_cache, monkeypatch):
    "The cache logic of the embedded model, with the 25-second dequantization replaced by a small fake."
    import topk_sae.lm as lm
    builds = []

    def fake_dequantize(out: Path):
        builds.append(out)
        (out / "model.safetensors").write_bytes(os.urandom(4096))
        (out / "config.json").write_text("{}")
    monkeypatch.setattr(lm, "dequantize_smollm2", fake_dequantize)
    folder = lm.smollm2_folder(progress=False)
    assert lm.cache_problem(folder) is None and len(builds) == 1
    assert lm.smollm2_folder(progress=False) == folder and len(builds) == 1  # intact: reused

    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # partial write
    assert "wrong size" in lm.cache_problem(folder)
    with pytest.warns(UserWarning, match="rebuilding the model cache"): lm.smollm2_folder(progress=False)
    assert len(builds) == 2 and lm.cache_problem(folder) is None

    data = bytearray(weights.read_bytes()); data[100] ^= 0xFF; weights.write_bytes(bytes(data))  # same size, altered
    assert "checksum" in lm.cache_problem(folder)
    (folder / "manifest.json").unlink()
    assert "not found" in lm.cache_problem(folder)
    with pytest.warns(UserWarning): lm.smollm2_folder(progress=False)
    assert len(builds) == 3 and lm.cache_problem(folder) is None
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no partial folders left


def test_demo_config_rejects_nonsense():
    with pytest.raises(ValueError, match="train_tokens must be positive"): DemoConfig(train_tokens=0)
