"""The training step on a GPU: topk_sae against its floor and, where installed, SAELens and sparsify (issue 5, part 2).

Run by `tools/gpu_check.sh` on a lent GPU machine; `--device cpu --quick` is the smoke run that keeps this script
working where there is no GPU (tests/test_bench_scripts.py). In one process, interleaved, with the device
synchronized around every call: topk_sae's step under bf16 autocast (the default on CUDA), in fp32, and with the
dense-autograd reference kernels; the encoder product alone (x @ W_enc, bf16 and fp32: the floor); and the peers'
steps when their packages import. Inputs: synthetic activations (sparse combinations of 4 d_model directions plus
noise, standardized per token), since the GPU machine has no model; step times do not depend on where the
activations come from. Prints a markdown table and writes it to --out.

    python bench/gpu.py [--out bench/results/gpu.md] [--repeats 20]
    python bench/gpu.py --device cpu --quick
"""
import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE)); sys.path.insert(0, str(HERE.parent))
from peers import RUNNERS  # noqa: E402
from run import interleaved  # noqa: E402


def synthetic(tok: int, d: int, device: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(seed)
    D = torch.nn.functional.normalize(torch.randn(4 * d, d, generator=g, device=device), dim=1)
    idx = torch.randint(0, 4 * d, (tok, 16), generator=g, device=device)
    x = torch.zeros(tok, 4 * d, device=device).scatter_(1, idx, torch.rand(tok, 16, generator=g, device=device)) @ D
    x += 0.05 * torch.randn(tok, d, generator=g, device=device)
    x -= x.mean(-1, keepdim=True)
    return x / x.std(-1, keepdim=True)


def timed(fns: dict, repeats: int, device: str) -> tuple[dict, dict]:
    "Median seconds of each callable (run.py's round-robin, the device synchronized after each call) and its peak extra device memory in MiB (CUDA only)."
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    med = interleaved({name: (lambda f=f: (f(), sync())) for name, f in fns.items()}, repeats, warmup=3)
    peak = {}
    for name, f in fns.items():
        if not cuda: peak[name] = float("nan"); continue
        sync(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
        f(); sync(); peak[name] = (torch.cuda.max_memory_allocated() - base) / 2**20
    return med, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the script, not a measurement")
    ap.add_argument("--out", default=str(HERE / "results" / "gpu.md"))
    ap.add_argument("--budget", type=float, default=150.0, help="seconds: no new configuration starts after this")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench/gpu.py: no CUDA device here; run it on a GPU machine (tools/gpu_check.sh), or --device cpu --quick for a smoke run")
    dev, k = args.device, 32
    # (d_model, n_latents, batch): the configuration, then GPU-sized batches and widths (GPT-2 small's d_model 768)
    # every row fits a 40 GB GPU; the widest first after the issue's own, so a short budget still gets the extremes
    configs = [(64, 512, 256)] if args.quick else [(576, 16384, 4096), (768, 131072, 16384), (576, 65536, 4096),
                                                   (576, 16384, 32768), (768, 32768, 65536)]
    peers = {}
    for name in ("sparsify", "SAELens"):
        try:
            RUNNERS[name](8, 64, 4, 10**6, 16, torch.randn(64, 8), device="cpu")
            peers[name] = RUNNERS[name]
        except ImportError as e:
            print(f"{name}: not installed here ({e.name}); its rows are left out", flush=True)
    name = torch.cuda.get_device_name() if dev.startswith("cuda") else "CPU"
    lines = [f"### Training step on {name}, k {k}, torch {torch.__version__}",
             f"Median of {args.repeats} interleaved repeats after 3 warm-ups, device synchronized around each call; synthetic "
             "standardized activations; peak: extra device memory during one call.", "",
             "| d_model | n_latents | batch | runner | median ms | vs topk_sae | vs floor (bf16 x @ W_enc) | peak MiB |",
             "|---|---|---|---|---|---|---|---|"]
    out, started = Path(args.out), time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:  # after every configuration, atomically: a run cut short keeps the rows it finished
        tmp = out.with_name(f".{out.name}.tmp"); tmp.write_text("\n".join(lines) + "\n"); tmp.replace(out)
    for d, n, B in configs:
        if time.perf_counter() - started > args.budget:
            lines.append(f"| {d} | {n} | {B} | (not run: the {args.budget:.0f} s budget was spent) | | | | |")
            continue
        try: med, peak = config_rows(d, n, B, k, dev, peers, args.repeats)
        except torch.cuda.OutOfMemoryError as e:
            lines.append(f"| {d} | {n} | {B} | out of memory: {str(e).splitlines()[0][:80]} | | | | |")
            med = None
        if med is not None:
            floor, ours = med["floor: x @ W_enc (bf16)"], med["topk_sae (bf16 autocast)"]
            for r, t in med.items():
                mib = "-" if peak[r] != peak[r] else f"{peak[r]:.0f}"
                lines.append(f"| {d} | {n} | {B} | {r} | {1000 * t:.2f} | {t / ours:.2f}x | {t / floor:.2f}x | {mib} |")
        print("\n".join(lines[-(len(med) if med else 1):]), flush=True)
        if dev.startswith("cuda"): torch.cuda.empty_cache()
        write()
    lines += ["", "`vs topk_sae` > 1: slower than topk_sae's default step. Targets (issue 5): SAELens >= 3x, sparsify >= 1.2x, "
              "topk_sae <= 1.5x the encoder product. AuxK idle in the plain rows (no latent dead yet); the AuxK row counts a latent "
              "dead after two batches without firing, so AuxK runs every step."]
    write()
    print("\n".join(lines))


def config_rows(d: int, n: int, B: int, k: int, dev: str, peers: dict, repeats: int) -> tuple[dict, dict]:
    "Median seconds and peak MiB of every runner and floor at one configuration."
    pool = synthetic(8 * B, d, dev).split(B)
    sample = synthetic(min(32768, 8 * B), d, dev, seed=1)
    def ours(**kw): return RUNNERS["topk_sae"](d, n, k, 10**12, B, sample, device=dev, **kw)
    runners = {"topk_sae (bf16 autocast)": ours(precision="bf16", dead_tokens=10**9),
               "topk_sae (fp32)": ours(precision="fp32", dead_tokens=10**9),
               "topk_sae (bf16, dense reference kernels)": ours(precision="bf16", kernels="dense", dead_tokens=10**9),
               "topk_sae + AuxK every step (bf16)": ours(precision="bf16", dead_tokens=2 * B)}
    for pname, R in peers.items():
        try: runners[pname] = R(d, n, k, 10**12, B, sample, device=dev)
        except Exception as e: print(f"{pname} at n {n}: {type(e).__name__}: {e}", flush=True)  # noqa: BLE001
    count = dict.fromkeys(runners, 0)
    def stepper(r):
        def f():
            runners[r].step(pool[count[r] % len(pool)]); count[r] += 1
        return f
    fns = {r: stepper(r) for r in runners}
    W, b = torch.randn(n, d, device=dev) / d**0.5, torch.zeros(n, device=dev)
    Wh, bh = W.bfloat16(), b.bfloat16()
    fns["floor: x @ W_enc (bf16)"] = lambda: torch.addmm(bh, pool[0].bfloat16(), Wh.t())
    fns["floor: x @ W_enc (fp32)"] = lambda: torch.addmm(b, pool[0], W.t())
    fns["floor + topk (bf16)"] = lambda: torch.addmm(bh, pool[0].bfloat16(), Wh.t()).topk(k, sorted=False)
    return timed(fns, repeats, dev)


if __name__ == "__main__":
    main()
