"""Harvesting against a known answer: every context's positions 1 onward, whatever the batch size, a last partial
batch included (a harvest that dropped it would still have the right width)."""
import torch

from topk_sae.activations import harvest, run_to_hook
from topk_sae.data import make_contexts, scored_rows

HOOK = "blocks.0.hook_resid_post"


def test_a_last_partial_batch_is_harvested(tiny_model, slice_docs):
    ctx = make_contexts(slice_docs, tiny_model.tokenizer, ctx_len=16, progress=False)[:10]
    acts = harvest(tiny_model, HOOK, ctx, batch_size=4, progress=False)  # batches of 4, 4 and 2 contexts
    assert acts.shape == (scored_rows(ctx), tiny_model.cfg.d_model) == (10 * 15, tiny_model.cfg.d_model)
    whole = run_to_hook(tiny_model, ctx, HOOK)[:, 1:].reshape(-1, tiny_model.cfg.d_model)
    torch.testing.assert_close(acts, whole.float(), rtol=1e-5, atol=1e-5)
