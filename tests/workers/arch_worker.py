"""A BatchTopK or Matryoshka training run under torchrun, for tests/test_architectures.py.

    torchrun --standalone --nproc_per_node 2 arch_worker.py OUT

It trains a BatchTopK SAE, then a Matryoshka SAE; every rank writes each one's final raw weights (threshold
included) to OUT.{arch}.rank{r}.safetensors.
"""
import sys

import torch
from safetensors.torch import save_file

from topk_sae.batchtopk import BatchTopKSAE
from topk_sae.distributed import init_distributed, rank
from topk_sae.matryoshka import MatryoshkaSAE
from topk_sae.model import SAEConfig
from topk_sae.train import TrainConfig, train

if __name__ == "__main__":
    out = sys.argv[1]
    torch.set_num_threads(1)
    init_distributed("gloo")
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(64, 16, generator=g), dim=1)
    acts = (torch.rand(4096, 64, generator=g) * (torch.rand(4096, 64, generator=g) < 0.05)) @ dirs * 10 + 3
    cfg = SAEConfig(d_model=16, n_latents=64, k=4)
    for arch, sae in (("batchtopk", BatchTopKSAE(cfg)), ("matryoshka", MatryoshkaSAE(cfg, prefixes=(4, 16, 64)))):
        res = train(sae, acts, TrainConfig.tiny(n_tokens=12 * 256, dead_tokens=512))
        weights = {k: v.detach().contiguous() for k, v in res.raw.state_dict().items()}
        save_file(weights, f"{out}.{arch}.rank{rank()}.safetensors")
    torch.distributed.destroy_process_group()  # gloo threads left at exit can abort a rank (SIGABRT, seen once in CI)
