"""The GPU op sequence without a GPU: a whole training step on the `meta` device, which has no data and cannot answer a
host question, so the step passing here means it asks none (no `.item()`, no boolean-mask gather, no `nonzero`, no
`bincount`, no CPU-only op). Shapes only: this is also how paper-scale steps are sized (`n_latents` 2^24)."""
import pytest
import torch

from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.train import EMA, DeadLatents, TrainConfig, TrainState, make_optimizer, resolve

def meta_state(d: int, n: int, k: int, batch: int, **cfg_kw) -> TrainState:
    sae = TopKSAE(SAEConfig(d_model=d, n_latents=n, k=k), device="meta")
    cfg = TrainConfig(n_tokens=batch * 100, batch_tokens=batch, progress=False, **cfg_kw)
    recipe = resolve(cfg, sae)
    state = TrainState(sae, cfg, recipe, make_optimizer(sae, recipe), EMA(sae, recipe.ema_decay),
                       DeadLatents(n, sae.device), var0=1.0)
    return state


@pytest.mark.parametrize("multi_topk", [False, True])
def test_a_training_step_with_auxk_runs_on_meta(multi_topk):
    state = meta_state(64, 4096, 8, 512, multi_topk=multi_topk, dead_tokens=512)
    state.dead.since.fill_(10**6)  # on meta this records nothing, but the AuxK branch is shape-driven: it runs
    out = state.step(torch.empty(512, 64, device="meta"))
    assert out.loss.device.type == "meta" and out.top.idx.shape == (512, 8)
    assert state.steps_done == 1 and state.sae.W_dec.grad.shape == (4096, 64)


def test_paper_scale_step_runs_on_meta():
    "n 2^24 latents of GPT-2 small's width: a step and the EMA result, in shapes only."
    state = meta_state(768, 2**24, 32, 4096, multi_topk=True)
    state.step(torch.empty(4096, 768, device="meta"))
    assert state.finish().W_enc.shape == (768, 2**24)
