"""The decoder on a GPU: topk_sae.triton_kernels against torch's embedding_bag (issue 16, part 6).

Run by `tools/gpu_check.sh` on a lent GPU machine. For each (tokens, k, n_latents, d_model), in one process,
interleaved, the device synchronized around every call: the forward pass alone, and forward plus backward (the
values' and W_dec's gradients) for embedding_bag with autograd (the torch path), the Triton kernels with atomic adds,
and the Triton kernels with the sorted, deterministic weight gradient. fp32 weights (as training keeps them), random
codes (uniform latents). The largest difference from the torch path is printed beside each row. Rows
are written to --out as they are measured; an out-of-memory configuration becomes a row. Without CUDA it says so and
exits 0 (nothing to time).

    python bench/triton_decode.py [--out bench/results/triton_decode.md] [--repeats 10] [--budget 15]
"""
import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE)); sys.path.insert(0, str(HERE.parent))
from run import interleaved  # noqa: I001  (bench/ is on the path only now)


def runners(tok: int, k: int, n: int, d: int) -> tuple[dict, dict]:
    "Callables to time, and each one's largest difference from embedding_bag (forward output and both gradients)."
    from topk_sae import triton_kernels as tk
    g = torch.Generator(device="cuda").manual_seed(0)
    idx = torch.randint(0, n, (tok, k), generator=g, device="cuda")  # a rare repeat within a token is summed alike
    vals = torch.rand(tok, k, generator=g, device="cuda").requires_grad_()
    W = (torch.randn(n, d, generator=g, device="cuda") / d**0.5).requires_grad_()
    up = torch.randn(tok, d, generator=g, device="cuda")
    def torch_fwd(): return F.embedding_bag(idx, W, per_sample_weights=vals, mode="sum")
    def fwd_bwd(dec):
        def f():
            y = dec()
            return (y, *torch.autograd.grad(y, (vals, W), up))
        return f
    fns = {"embedding_bag forward": lambda: torch_fwd().detach(),
           "Triton forward": lambda: tk.decode_forward(idx, vals.detach(), W.detach()),
           "embedding_bag forward + backward": fwd_bwd(torch_fwd),
           "Triton forward + backward (atomic dW)": fwd_bwd(lambda: tk.sparse_decode(idx, vals, W, False)),
           "Triton forward + backward (sorted dW)": fwd_bwd(lambda: tk.sparse_decode(idx, vals, W, True))}
    ref = fns["embedding_bag forward + backward"]()
    err = {"embedding_bag forward": 0.0, "embedding_bag forward + backward": 0.0,
           "Triton forward": (fns["Triton forward"]() - ref[0]).abs().max().item()}
    for name in ("Triton forward + backward (atomic dW)", "Triton forward + backward (sorted dW)"):
        err[name] = max((a - r).abs().max().item() for a, r in zip(fns[name](), ref))
    return fns, err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--budget", type=float, default=15.0, help="seconds: no new configuration starts after this")
    ap.add_argument("--out", default=str(HERE / "results" / "triton_decode.md"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench/triton_decode.py: no CUDA device here, nothing to time (tools/gpu_check.sh runs it on a GPU); "
              "the kernels' CPU tests: TRITON_INTERPRET=1 pytest tests/test_triton.py")
        return
    from topk_sae import triton_kernels as tk
    if not tk.available("cuda"):
        sys.exit("bench/triton_decode.py: Triton does not import here (or TOPK_SAE_TRITON=0): nothing to compare")
    # (tokens, k, n_latents, d_model): the sizes, a GPU-sized batch, 2^20 latents, GPT-2 medium's width
    configs = [(4096, 32, 16384, 576), (16384, 32, 131072, 768), (4096, 64, 2**20, 768), (4096, 32, 131072, 4096)]
    lines = [f"### Triton decoder on {torch.cuda.get_device_name()}, fp32 W_dec, torch {torch.__version__}",
             f"Median of {args.repeats} interleaved repeats after 3 warm-ups, device synchronized around each call.",
             "",
             "| tokens | k | n_latents | d_model | runner | median ms | vs embedding_bag | max abs diff |",
             "|---|---|---|---|---|---|---|---|"]
    out, started = Path(args.out), time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    def write() -> None:  # after every configuration, atomically: a run cut short keeps the rows it finished
        tmp = out.with_name(f".{out.name}.tmp"); tmp.write_text("\n".join(lines) + "\n"); tmp.replace(out)
    for tok, k, n, d in configs:
        head = f"| {tok} | {k} | {n} | {d} |"
        if time.perf_counter() - started > args.budget:
            lines.append(f"{head} (not run: the {args.budget:.0f} s budget was spent) | | | |"); continue
        try:
            fns, err = runners(tok, k, n, d)
            med = interleaved({r: (lambda f=f: (f(), torch.cuda.synchronize())) for r, f in fns.items()},
                              args.repeats, warmup=3)
            base = {r: med["embedding_bag forward" if "backward" not in r else "embedding_bag forward + backward"]
                    for r in med}
            rows = [f"{head} {r} | {1000 * t:.3f} | {t / base[r]:.2f}x | {err[r]:.1e} |" for r, t in med.items()]
        except torch.cuda.OutOfMemoryError as e:
            rows = [f"{head} out of memory: {str(e).splitlines()[0][:80]} | | | |"]
        lines += rows
        print("\n".join(rows), flush=True)
        fns = None
        torch.cuda.empty_cache()
        write()
    lines += ["", "`vs embedding_bag` < 1: the Triton kernels are faster than the torch path at the same work."]
    write()
    print(f"written to {out}")


if __name__ == "__main__":
    main()
