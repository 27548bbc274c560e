"""Test setup: offline, one thread, and jaxtyping shape checks (with beartype) switched on for topk_sae.

The import hook must be installed before any topk_sae module is imported, which is why it lives here.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

from jaxtyping import install_import_hook  # noqa: E402

install_import_hook("topk_sae", "beartype.beartype")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs the real embedded model (deselect with -m 'not slow')")


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
