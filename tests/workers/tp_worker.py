"""A tensor-parallel training run for tests/test_tensor_parallel.py: train_worker.py's run, tensor_parallel=N.

    torchrun --standalone --nproc_per_node 4 tp_worker.py OUT --tp 2 [--steps N] [--ckpt DIR] [--slow SECONDS]

It trains the same tiny SAE on the same data as train_worker.py, then saves the trained module and
its EMA as whole SAEs (`sae.save` is collective under tensor parallelism) into OUT/raw and OUT/ema, and
the sharded EMA SAE's reconstruction of the first 64 rows into OUT/forward.safetensors.
"""
import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch
import train_worker
from safetensors.torch import save_file

from topk_sae.distributed import init_distributed, rank
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.train import train

def run(out: str, tp: int, steps: int = 24, ckpt: str | None = None, slow: float = 0.0) -> None:
    cfg = dataclasses.replace(train_worker.config(steps, ckpt), tensor_parallel=tp)
    res = train(TopKSAE(SAEConfig.tiny(n_latents=96)), train_worker.SlowSource(train_worker.data(), slow), cfg)
    res.raw.save(Path(out) / "raw")
    res.sae.save(Path(out) / "ema")
    x = train_worker.data()[:64]
    with torch.no_grad(): y, y_dense = res.sae(x), res.sae.decode(res.sae.encode(x), x=x)  # inference, sharded
    if rank() == 0: save_file({"x_hat": y, "x_hat_dense": y_dense}, Path(out) / "forward.safetensors")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tp", type=int, default=2)
    ap.add_argument("--ckpt")
    ap.add_argument("--slow", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=24)
    a = ap.parse_args()
    torch.set_num_threads(1)
    init_distributed()
    run(a.out, a.tp, a.steps, a.ckpt, a.slow)
    torch.distributed.destroy_process_group()  # with the mesh's subgroups: gloo threads left at exit can abort it
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)  # the work is saved: skip interpreter teardown, where gloo's threads can still abort the process
