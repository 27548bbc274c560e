"""A training run driven from the command line, for the multi-process and resume tests.

    python train_worker.py OUT [--ckpt DIR] [--slow SECONDS] [--steps N]
    torchrun --standalone --nproc_per_node 2 train_worker.py OUT

It trains a tiny SAE on fixed random data (the same on every rank) and writes the final raw
weights and dead counters of rank 0 to OUT (safetensors). `--slow` sleeps before every batch, so
that a test can kill the process mid-run.
"""
import argparse
import json
import os
import time

import torch
from safetensors.torch import save_file

from topk_sae.activations import TensorSource
from topk_sae.distributed import init_distributed, rank
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.train import TrainConfig, train

def data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(96, 16, generator=g), dim=1)
    codes = torch.rand(8192, 96, generator=g) * (torch.rand(8192, 96, generator=g) < 0.05)
    return codes @ dirs * 10 + 3


class SlowSource(TensorSource):
    def __init__(self, acts, delay): super().__init__(acts); self.delay = delay
    def batches(self, batch_tokens, seed=0, start=0):
        for b in super().batches(batch_tokens, seed, start):
            time.sleep(self.delay)
            yield b


def config(steps: int, ckpt: str | None) -> TrainConfig:
    # a short dead window so AuxK is active, Multi-TopK on: every cross-process path is exercised
    extra = json.loads(os.environ.get("TRAIN_WORKER_CFG", "{}"))  # other TrainConfig fields, as JSON (for debugging)
    return TrainConfig.tiny(**{"n_tokens": steps * 256, "dead_tokens": 512, "multi_topk": True, "checkpoint_dir": ckpt,
                               "checkpoint_every": 512 if ckpt else None, "resume": bool(ckpt), **extra})


def run(out: str, steps: int = 24, ckpt: str | None = None, slow: float = 0.0) -> dict:
    res = train(TopKSAE(SAEConfig.tiny(n_latents=96)), SlowSource(data(), slow), config(steps, ckpt))
    result = {**{k: v.detach().clone() for k, v in res.raw.state_dict().items()},
              **{f"ema.{k}": v.detach().clone() for k, v in res.sae.state_dict().items()}}
    if rank() == 0 and out: save_file({k: v.contiguous() for k, v in result.items()}, out)
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--ckpt")
    ap.add_argument("--slow", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=24)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if "WORLD_SIZE" in os.environ: init_distributed()
    run(a.out, a.steps, a.ckpt, a.slow)
    if torch.distributed.is_initialized(): torch.distributed.destroy_process_group()  # gloo threads can abort at exit
