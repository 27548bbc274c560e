"""Test setup: offline, one thread, and jaxtyping shape checks (with beartype) switched on for topk_sae.

The import hook must be installed before any topk_sae module is imported, which is why it lives here.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

from jaxtyping import install_import_hook

install_import_hook("topk_sae", "beartype.beartype")

from typing import Any, NamedTuple

import pytest
import torch

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: the real embedded model, or JupyterLab (deselect with -m 'not slow')")


@pytest.fixture(scope="session")
def tiny_model():
    from topk_sae.lm import load_model
    return load_model("tiny")


@pytest.fixture(scope="session")
def slice_docs():
    from topk_sae.data import SOTU_SLICE, load_corpus
    return load_corpus(SOTU_SLICE)


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch):
    "A private cache folder, so a test can break caches without touching the user's."
    monkeypatch.setenv("TOPK_SAE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


class TinySetup(NamedTuple):
    "The tiny model, 32-token contexts of the corpus slice, and a TopK SAE trained on the first 300 of them."
    model: Any
    hook: str
    contexts: torch.Tensor  # (batch, 32) token ids; rows 300 on were not trained on
    sae: Any  # a TopKSAE(d_model 64, n_latents 128, k 6) with its hook recorded


@pytest.fixture(scope="session")
def tiny_sae(tiny_model, slice_docs) -> TinySetup:
    "One small trained SAE for the tests that need one (widgets, browser, evaluation): trained once per session."
    from topk_sae.activations import harvest
    from topk_sae.data import make_contexts
    from topk_sae.model import SAEConfig, TopKSAE
    from topk_sae.train import TrainConfig, train
    hook = "blocks.0.hook_resid_post"
    ctx = make_contexts(slice_docs, tiny_model.tokenizer, ctx_len=32, progress=False)
    acts = harvest(tiny_model, hook, ctx[:300], progress=False)
    sae = train(TopKSAE(SAEConfig(d_model=64, n_latents=128, k=6, hook=hook)), acts,
                TrainConfig.tiny(n_tokens=16_000, lr=3e-3)).sae
    return TinySetup(tiny_model, hook, ctx, sae)
