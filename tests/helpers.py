"""Helpers shared between test files (import them as `from helpers import ...`; pytest puts tests/ on the path)."""
import copy

import pytest
import torch

from topk_sae.model import TopKSAE
from topk_sae.train import TrainConfig, TrainState

def assert_same(ours, reference):
    "Values and gradients equal to 1e-10; a gradient the reference leaves out (None) must be absent or zero in ours."
    for a, r in zip(ours, reference):
        if r is None: assert a is None or a.abs().max() == 0
        else: torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


def steps_by_kernel(base: TopKSAE, x: torch.Tensor, impl: str, steps: int = 4, all_dead: bool = False, **cfg_kw):
    """`steps` training steps of a copy of `base` on the batch `x` with the `impl` kernels: outputs and final weights.

    adam_eps 1e-6, not the paper's 6.25e-10: a gradient component near 1e-10 (a latent that barely fires) makes Adam
    turn rounding-level differences between the two paths into 1e-9 weight differences by step 4 (d 8, n 9, seed 439).
    """
    sae, tok = copy.deepcopy(base), len(x)
    cfg = TrainConfig(n_tokens=tok * steps, batch_tokens=tok, dead_tokens=tok, lr=1e-2, kernels=impl, progress=False,
                      adam_eps=1e-6, **cfg_kw)
    state = TrainState.start(sae, cfg, x)
    if all_dead: state.dead.since += 10**6  # every latent starts dead: AuxK runs in the first step, and on later misses
    outs = [state.step(x) for _ in range(steps)]
    return outs, {key: v.cpu() for key, v in sae.state_dict().items()}


def assert_steps_match(sparse, dense) -> None:
    "Two `steps_by_kernel` results: the same losses step by step, the same final weights."
    expected = [o.loss.item() for o in dense[0]]
    assert [o.loss.item() for o in sparse[0]] == pytest.approx(expected, rel=1e-8, abs=1e-10)
    for key, v in sparse[1].items(): torch.testing.assert_close(v, dense[1][key], rtol=1e-7, atol=1e-9)
