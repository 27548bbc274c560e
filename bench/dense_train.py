"""Benchmark: a training step of the dense-code architectures (JumpReLU, ReLU) against TopK's, and what the
dead-latent count's scatter costs in it.

A ReLU or JumpReLU SAE's training code is every latent, its index row expanded over the tokens. `fired_mask` reduces
such a code over tokens before it scatters; the row-by-row scatter it replaced is run beside it (same steps, same
data, interleaved) by handing it the index rows written out. Both give the same mask; the table gives the median
seconds per step of each, at the architecture study's shape (batch 4096, d_model 576, n 4608).

    .venv/bin/python bench/dense_train.py [--steps 6] [--repeats 3] [--threads 2]
"""
import argparse
import statistics
import time

import torch

import topk_sae.train as train_mod
from topk_sae.jumprelu import JumpReLUConfig, JumpReLUSAE
from topk_sae.kernels import fired_mask
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.relu import ReLUSAE, ReLUSAEConfig
from topk_sae.train import TrainConfig, TrainState

def row_by_row(idx, acts, n, offset=0):
    "The scatter before the change: every (token, latent) entry of the code."
    return fired_mask(idx.contiguous(), acts, n, offset)


def seconds_per_step(make, x, steps: int, mask) -> float:
    train_mod.fired_mask = mask
    try:
        cfg = TrainConfig(n_tokens=(steps + 1) * len(x), batch_tokens=len(x), progress=False)
        state = TrainState.start(make(), cfg, x)
        state.step(x)  # warm-up
        start = time.perf_counter()
        for _ in range(steps): state.step(x)
        return (time.perf_counter() - start) / steps
    finally:
        train_mod.fired_mask = fired_mask


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--d-model", type=int, default=576)
    p.add_argument("--n", type=int, default=4608)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.randn(a.batch, a.d_model)
    kw = {"d_model": a.d_model, "n_latents": a.n}
    archs = {"TopK k 32": lambda: TopKSAE(SAEConfig(**kw, k=32)),
             "JumpReLU L0 32": lambda: JumpReLUSAE(JumpReLUConfig(**kw, target_l0=32.0, init_l0=32.0)),
             "ReLU l1 0.19": lambda: ReLUSAE(ReLUSAEConfig(**kw, l1_coef=0.19))}
    print(f"threads {a.threads}, batch {a.batch}, d_model {a.d_model}, n {a.n}, {a.steps} steps x {a.repeats} repeats")
    print("| architecture | s/step (reduce, then scatter) | s/step (row-by-row scatter) | ratio | vs TopK |")
    print("|---|---|---|---|---|")
    topk = None
    for name, make in archs.items():
        new, old = [], []
        for _ in range(a.repeats):  # interleaved: the machine's load falls on both alike
            new.append(seconds_per_step(make, x, a.steps, fired_mask))
            old.append(seconds_per_step(make, x, a.steps, row_by_row))
        n_med, o_med = statistics.median(new), statistics.median(old)
        topk = topk or n_med
        print(f"| {name} | {n_med:.3f} | {o_med:.3f} | {o_med / n_med:.2f}x | {n_med / topk:.1f}x |")


if __name__ == "__main__":
    main()
