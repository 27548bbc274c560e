"""Bad input gets a clear error that says what to do, and nothing already saved is lost.

Each error message is checked in one place. Most are checked where they are raised, by a `test_fail` in the lesson cell
next to the definition (00_core: non-finite values, corrupt or missing JSON, unknown config fields; 01_model: k and
d_model out of range, missing or corrupt weights, weights that do not fit the config; 02_lm: unknown hooks;
03_data: empty corpora, short documents; 04_activations: unknown hooks at harvest; 05_train: a source of another
width, non-finite batches). This file keeps the messages no notebook checks.
"""
import os
from pathlib import Path

import pytest
import torch

from topk_sae import lm
from topk_sae.activations import harvest
from topk_sae.cli import DemoConfig
from topk_sae.data import Document, make_contexts, split_documents
from topk_sae.model import SAEConfig, TopKSAE

def test_d_model_mismatch_names_the_hook():
    sae = TopKSAE(SAEConfig.tiny(hook="blocks.3.hook_resid_post"))
    with pytest.raises(ValueError, match=r"width 12 but this SAE reads d_model=16 \(from blocks.3.hook_resid_post\)"):
        sae(torch.randn(2, 12))


def test_split_needs_two_documents():
    with pytest.raises(ValueError, match="at least 2 documents"): split_documents([Document("a", "x")])


def test_corrupt_activation_cache_is_harvested_again(tmp_path, tiny_model, slice_docs):
    ctx = make_contexts(slice_docs[:1], tiny_model.tokenizer, progress=False)[:6]
    f = tmp_path / "acts.safetensors"
    first = harvest(tiny_model, "blocks.1.hook_resid_post", ctx, cache=f, progress=False)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.warns(UserWarning, match="unusable, it is corrupt"):
        again = harvest(tiny_model, "blocks.1.hook_resid_post", ctx, cache=f, progress=False)
    assert torch.equal(first, again)
    with pytest.warns(UserWarning, match="harvested from different inputs"):
        other = harvest(tiny_model, "blocks.1.hook_resid_post", ctx[:3], cache=f, progress=False)  # same file
    assert other.shape[0] == 3 * 63


def test_broken_model_cache_is_rebuilt(isolated_cache, monkeypatch):
    "The cache logic of the embedded model, with the 25-second dequantization replaced by a small fake."
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


def test_fvu_on_constant_activations_says_why():
    from topk_sae.metrics import fvu
    from topk_sae.model import SAEConfig, TopKSAE
    with pytest.raises(ValueError, match="do not vary"):
        fvu(TopKSAE(SAEConfig.tiny(normalize="none")), torch.ones(50, 16))


@pytest.mark.parametrize("bad", [True, 3.0, torch.tensor(3)])
def test_a_latent_is_an_integer_index(tiny_sae, bad):
    from topk_sae.latents import LatentIndex
    index = LatentIndex.build(tiny_sae.sae, tiny_sae.model, tiny_sae.contexts[300:310], progress=False)
    with pytest.raises(TypeError, match="a latent is an integer index"): index.check_latent(bad)


@pytest.mark.parametrize("content,message", [
    ('{"name": "a", "text": "fine"}\n{"text": "no name"}\n', "line 2: expected an object with string fields"),
    ('{"name": "a", "text": 5}\n', "line 1: expected an object"),
    ('{"name": "a", "text": "fine"}\nnot json\n', "line 2: not JSON"),
])
def test_corpus_lines_are_named(tmp_path, content, message):
    from topk_sae.data import load_corpus
    f = tmp_path / "c.jsonl"
    f.write_text(content)
    with pytest.raises(ValueError, match=message): load_corpus(f)


def test_a_text_file_that_is_not_utf8_is_named(tmp_path):
    from topk_sae.data import load_corpus
    f = tmp_path / "speech.txt"
    f.write_bytes("Fellow citizens, caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="speech.txt is not UTF-8 text"): load_corpus(f)


def test_harvest_refuses_what_it_cannot_harvest(tiny_model):
    ids = torch.randint(0, tiny_model.cfg.d_vocab, (4, 8))
    with pytest.raises(ValueError, match="not \\(batch, pos, width\\)"):
        harvest(tiny_model, "blocks.0.attn.hook_pattern", ids, progress=False)
    # float or out-of-vocabulary ids: checked by check_contexts (04_activations), here already by the annotations


def test_complex_activations_are_refused_not_cast():
    "A complex tensor would be cast to its real part with a warning at most; it is refused, in training and after."
    import torch

    from topk_sae.core import check_finite
    from topk_sae.model import SAEConfig, TopKSAE
    sae, x = TopKSAE(SAEConfig.tiny()), torch.randn(512, 16, dtype=torch.complex64)
    # (under pytest the annotations refuse complex tensors first; users run without that hook)
    with pytest.raises(ValueError, match="are complex"): sae._check_input(x)  # what forward and encode call first
    with pytest.raises(ValueError, match="are complex"): check_finite(x)  # what TensorSource and StoreWriter call
