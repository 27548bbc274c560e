"""Tensor parallelism on gloo: step time and bytes sent per step for 1, 2 and 4 CPU processes at a fixed total n.

    python bench/tp.py [--n 16384] [--d 64] [--k 16] [--batch 1024] [--steps 12] [--procs 1 2 4]

Each row launches `torchrun --nproc_per_node P` on this script in worker mode, which trains a TopK SAE with
`TrainConfig(tensor_parallel=P)` (AuxK on) and counts what its process hands to `torch.distributed`'s
collectives: an all-gather sends its tensor to the P - 1 others, an all-reduce `2 (P - 1) / P` times its tensor
(ring algorithms). `predicted` is `topk_sae.memory.communication` for the same run. The times are CPU times on
whatever else the machine is doing: the bytes are the figure to compare.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

SENT = {"bytes": 0}


def count_collectives() -> None:
    "Wrap all_reduce and all_gather so that the bytes this process sends are added up in SENT."
    dist = torch.distributed
    reduce, gather = dist.all_reduce, dist.all_gather

    def all_reduce(t, *a, group=None, **kw):
        p = dist.get_world_size(group)
        SENT["bytes"] += 2 * (p - 1) * t.numel() * t.element_size() // p
        return reduce(t, *a, group=group, **kw)

    def all_gather(out, t, *a, group=None, **kw):
        SENT["bytes"] += (dist.get_world_size(group) - 1) * t.numel() * t.element_size()
        return gather(out, t, *a, group=group, **kw)

    dist.all_reduce, dist.all_gather = all_reduce, all_gather


def worker(a: argparse.Namespace) -> None:
    from topk_sae.distributed import init_distributed, rank, world_size
    from topk_sae.model import SAEConfig, TopKSAE
    from topk_sae.train import TrainConfig, train
    torch.set_num_threads(1)
    init_distributed("gloo")
    count_collectives()
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(a.batch * a.steps, a.d, generator=g)
    cfg = TrainConfig(n_tokens=a.batch * a.steps, batch_tokens=a.batch, tensor_parallel=world_size(), log_every=1,
                      dead_tokens=2 * a.batch, progress=False, init_tokens=a.batch)
    res = train(TopKSAE(SAEConfig(d_model=a.d, n_latents=a.n, k=a.k)), acts, cfg)
    seconds = res.history.seconds.diff().dropna().tolist()[2:]  # the first steps warm up
    if rank() == 0:
        Path(a.out).write_text(json.dumps({"ms": 1000 * statistics.median(seconds), "bytes": SENT["bytes"] / a.steps,
                                           "k_aux": res.recipe.k_aux}))
    torch.distributed.destroy_process_group()


def main(a: argparse.Namespace) -> None:
    from topk_sae.memory import communication
    rows = ["| processes | latents per process | ms per step | MiB sent per step and process | predicted MiB |",
            "|---:|---:|---:|---:|---:|"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for p in a.procs:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "r.json"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(p), __file__,
                   "--worker", "--out", str(out)]
            sizes = json.dumps({k: getattr(a, k) for k in ("n", "d", "k", "batch", "steps")})  # torchrun eats --n
            subprocess.run(cmd, env={**env, "TP_BENCH_SIZES": sizes}, check=True, capture_output=True, text=True,
                           timeout=1800)
            r = json.loads(out.read_text())
        c = communication(a.d, a.n, a.k, a.batch, world_size=p, tensor_parallel=p, k_aux=r["k_aux"], precision="fp32")
        rows.append(f"| {p} | {a.n // p:,} | {r['ms']:.1f} | {r['bytes'] / 2**20:.3f} | {c.total / 2**20:.3f} |")
    print(f"n_latents {a.n:,}, d_model {a.d}, k {a.k}, batch {a.batch} tokens, AuxK on, fp32, gloo on CPU\n")
    print("\n".join(rows))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16384)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.worker: vars(a).update(json.loads(os.environ["TP_BENCH_SIZES"]))
    worker(a) if a.worker else main(a)
