"""A tensor-parallel training run for tests/test_tensor_parallel.py: train_worker.py's run, tensor_parallel=N.

    torchrun --standalone --nproc_per_node 4 tp_worker.py OUT --tp 2 [--steps N] [--ckpt DIR] [--slow SECONDS]
    torchrun --standalone --nproc_per_node 2 tp_worker.py OUT --tp 2 --eval SAE_DIR

It trains the same tiny SAE on the same data as train_worker.py, then saves the trained module and
its EMA as whole SAEs (`sae.save` is collective under tensor parallelism) into OUT/raw and OUT/ema, and
the sharded EMA SAE's reconstruction of the first 64 rows into OUT/forward.safetensors.

With `--eval`, it instead loads the whole SAE saved in SAE_DIR as shards (`parallel.load_shard`), evaluates
it on the tiny model at EVAL_HOOK on the contexts in OUT/tokens.safetensors (`evaluate`, EvalConfig.tiny(),
every part), opens latents in a `LatentIndex`, and writes what rank 0 got into OUT/eval.json.
"""
import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import torch
import train_worker
from safetensors.torch import load_file, save_file

from topk_sae import parallel
from topk_sae.distributed import init_distributed, mesh_shard, rank
from topk_sae.evaluate import EvalConfig, evaluate
from topk_sae.latents import LatentIndex, latent_data, sorted_latents
from topk_sae.lm import load_model
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


EVAL_HOOK = "blocks.0.hook_resid_post"


def inspect(sae, model, tokens) -> list[dict]:
    "`latent_data` of the densest latent and the densest one in the second half of the latents (collective)."
    index = LatentIndex.build(sae, model, tokens, EVAL_HOOK, progress=False)
    order = sorted_latents(index)
    pick = [order[0], next(i for i in order if i >= sae.cfg.n_latents // 2)]
    return [latent_data(index, i).to_dict() for i in pick]


def run_eval(out: str, sae_dir: str, tp: int) -> None:
    model, tokens = load_model("tiny"), load_file(Path(out) / "tokens.safetensors")["tokens"]
    n_latents = json.loads((Path(sae_dir) / "cfg.json").read_text())["n_latents"]
    sae = parallel.load_shard(sae_dir, mesh_shard(n_latents, tp))
    report = evaluate(model, sae, EVAL_HOOK, tokens, EvalConfig.tiny())
    latents = inspect(sae, model, tokens)
    if rank() == 0:
        result = {"report": report.to_json(), "density": report.activations.density.tolist(), "latents": latents}
        (Path(out) / "eval.json").write_text(json.dumps(result))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tp", type=int, default=2)
    ap.add_argument("--ckpt")
    ap.add_argument("--slow", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--eval")
    a = ap.parse_args()
    torch.set_num_threads(1)
    init_distributed()
    if a.eval: run_eval(a.out, a.eval, a.tp)
    else: run(a.out, a.tp, a.steps, a.ckpt, a.slow)
    torch.distributed.destroy_process_group()  # with the mesh's subgroups: gloo threads left at exit can abort it
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)  # the work is saved: skip interpreter teardown, where gloo's threads can still abort the process
