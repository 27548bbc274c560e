"""SAEBench's core evaluation run offline on SmolLM2 and State of the Union contexts, beside topk_sae's `evaluate`.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 .venv-bench/bin/python bench/saebench_evals.py [--sae FOLDER --layer 6]

SAEBench's `core` eval (sae_bench.evals.core.main.multiple_evals) runs unchanged except for two things it would
fetch from the hub: its model loader (`HookedTransformer.from_pretrained_no_processing`) returns the embedded
SmolLM2, and its dataset is a local `datasets.Dataset` of pre-tokenized 64-token SOTU contexts (BOS first), which
SAELens' ActivationsStore serves as is. topk_sae's `evaluate` reads the same contexts. Without --sae a small TopK
SAE is trained on other SOTU contexts. Every other SAEBench eval needs a hub dataset or an LLM; the table says which.
Writes bench/results/saebench.md and the SAEBench JSON beside it (bench/results/saebench_core.json).
"""
import argparse
import importlib.machinery
import importlib.util
import json
import os
import sys
import tempfile
import time
import types
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

from topk_sae.activations import harvest
from topk_sae.data import load_corpus, make_contexts
from topk_sae.downstream import splice
from topk_sae.evaluate import DownstreamEval, EvalConfig, evaluate
from topk_sae.lm import EMBEDDED_MODEL, load_model, resid_hook
from topk_sae.model import SAEConfig, TopKSAE, load_sae
from topk_sae.saebench import to_saebench
from topk_sae.train import TrainConfig, train

RESULTS = Path(__file__).parent / "results"
OFFLINE = [  # (eval, why it did not run here): read from sae_bench 0.6.0's eval modules and configs
    ("sparse_probing", ("8 labelled hub datasets (LabHC/bias_in_bios_class_set1..3, "
     "canrager/amazon_reviews_mcauley_1and5 and _sentiment, codeparrot/github-code, fancyzhx/ag_news, "
     "Helsinki-NLP/europarl); SOTU has no labels")),
    ("sparse_probing_sae_probes", "the `sae-probes` package (not installed) and its hub probing datasets"),
    ("absorption", ("no dataset (its words come from the tokenizer's vocabulary), but it loads the model with "
     "`HookedTransformer.from_pretrained_no_processing` (patchable as for core) and needs the model to spell "
     "first letters in context; it warns below 2B parameters and stops when too few first-letter probes work: "
     "not tried in the time on SmolLM2-135M")),
    ("scr / tpp", ("LabHC/bias_in_bios_class_set1 and canrager/amazon_reviews_mcauley_1and5 (profession/gender, "
     "category/rating labels)")),
    ("unlearning", ("the WMDP bio-forget-corpus jsonl (given on request by its authors), cais/wmdp, cais/mmlu, "
     "wikitext; gemma-2-2b-it only")),
    ("autointerp", "an OpenAI API key (openai_api_key.txt) and monology/pile-uncopyrighted"),
    ("ravel", ("adamkarvonen/ravel_prompts (hub) and a model from `AutoModelForCausalLM.from_pretrained`; "
     "gemma-2-2b or pythia-160m-deduped only")),
    ("mdl", ("HuggingFaceFW/fineweb through `ActivationsStore.from_sae`: the same local-dataset patch as core "
     "would serve it; not tried in the time")),
    ("meta_structure", ("no dataset (a meta-SAE trained on the decoder rows with SAELens' trainer); could run "
     "offline; not tried in the time")),
]


def small_sae(model, hook: str, train_ctx: torch.Tensor, n_latents: int, k: int, n_tokens: int) -> TopKSAE:
    "A TopK SAE trained on `train_ctx` (never on the eval contexts)."
    acts = harvest(model, hook, train_ctx, progress=False)
    cfg = SAEConfig(d_model=model.cfg.d_model, n_latents=n_latents, k=k, hook=hook)
    tc = TrainConfig.tiny(n_tokens=n_tokens, batch_tokens=512, init_tokens=4096)
    return train(TopKSAE(cfg), acts, tc).sae


def _stub_tabulate() -> None:
    "sae_bench's SAE-selection printer imports `tabulate` (not in .venv-bench) at module level; core never calls it."
    if importlib.util.find_spec("tabulate"): return
    mod = types.ModuleType("tabulate")
    mod.__spec__ = importlib.machinery.ModuleSpec("tabulate", None)
    mod.tabulate = lambda rows, headers=(), **kw: "\n".join(map(str, [headers, *rows]))
    sys.modules["tabulate"] = mod


def run_core(model, bench, tokens: torch.Tensor, batch: int, exclude_bos: bool, out: Path) -> dict:
    "SAEBench's own `multiple_evals` on `tokens`, with the model loader and dataset served locally."
    from datasets import Dataset
    _stub_tabulate()
    from sae_bench.evals.core import main as core

    core.HookedTransformer.from_pretrained_no_processing = staticmethod(lambda name, **kw: model)  # no hub here
    local = Dataset.from_dict({"input_ids": tokens.tolist()})  # pre-tokenized: SAELens serves the rows as they are

    class LocalStore(core.ActivationsStore):  # SAEBench passes its dataset by name; the name "sotu" means `local`
        @classmethod
        def from_sae(cls, model, sae, dataset, **kw): return super().from_sae(model, sae, local, **kw)

    core.ActivationsStore = LocalStore
    n = len(tokens) // batch
    res = core.multiple_evals([("topk_sae", bench)], n_eval_reconstruction_batches=n,
                              n_eval_sparsity_variance_batches=n, eval_batch_size_prompts=batch,
                              compute_featurewise_density_statistics=True,
                              compute_featurewise_weight_based_metrics=True,
                              exclude_special_tokens_from_reconstruction=exclude_bos, dataset="sotu",
                              context_size=tokens.shape[1], output_folder=str(out), device="cpu", force_rerun=True)
    if not res: raise RuntimeError("SAEBench's core eval logged an error and returned nothing (see the log above)")
    return json.loads(next(out.glob("*.json")).read_text())


@torch.no_grad()
def saebench_formulas(sae, acts: torch.Tensor, n_ctx: int, batch: int) -> dict:
    "SAEBench's explained-variance formulas (core/main.py) on topk_sae's own harvest, in raw activation space."
    from datasets import Dataset
    order = Dataset.from_dict({"i": list(range(n_ctx))}).shuffle(seed=42)["i"]  # its store's order (seed 42)
    x = acts.double().view(n_ctx, -1, acts.shape[-1])[torch.tensor(order)].flatten(0, 1)
    acts, rows_per_batch = x.to(acts.dtype), batch * (acts.shape[0] // n_ctx)
    r = (x - sae(acts).double()).pow(2).sum(-1)
    total = x.pow(2).sum(-1).mean() - x.pow(2).mean(0).mean() ** 2  # SAEBench's `explained_variance` denominator
    centred = torch.cat([b - b.mean(0) for b in x.split(rows_per_batch)])  # it centres each batch on its own mean
    legacy = 1 - r / centred.pow(2).sum(-1)  # its `explained_variance_legacy`, per token then averaged
    return {"ev": (1 - r.mean() / total).item(), "ev_legacy": legacy.mean().item(),
            "ev_raw": (1 - r.sum() / (x - x.mean(0)).pow(2).sum()).item()}


@torch.no_grad()
def our_ce_on_their_set(model, sae, hook: str, tokens: torch.Tensor, batch: int) -> dict:
    "Clean, spliced and zero-ablated (every position) CE and KL with topk_sae's `splice`, over SAEBench's predictions."
    sums, n = torch.zeros(4, dtype=torch.float64), 0
    zero_all = lambda act, hook: torch.zeros_like(act)
    for b in tokens.split(batch):
        clean = model(b).float()
        with splice(model, sae, hook): spliced = model(b).float()
        with model.hooks(fwd_hooks=[(hook, zero_all)]): zero = model(b).float()
        ce = lambda lg, b=b: torch.nn.functional.cross_entropy(lg[:, 1:-1].flatten(0, 1), b[:, 2:].flatten(),
                                                               reduction="sum")
        lp, lq = clean[:, 1:-1].log_softmax(-1), spliced[:, 1:-1].log_softmax(-1)
        sums += torch.stack([ce(clean), ce(spliced), ce(zero), (lp.exp() * (lp - lq)).sum()]).double()
        n += b[:, 2:].numel()
    out = dict(zip(["ce_clean", "ce_spliced", "ce_zero", "kl"], (sums / n).tolist()))
    return out | {"ce_recovered": (out["ce_zero"] - out["ce_spliced"]) / (out["ce_zero"] - out["ce_clean"])}


def table(rows: list[tuple]) -> str:
    head = "| eval | metric | ran? | ours | SAEBench | note |\n|---|---|---|---|---|---|\n"
    return head + "\n".join("| " + " | ".join(str(c) for c in r) + " |" for r in rows) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sae", help="a folder written by sae.save (default: train a small one)")
    ap.add_argument("--layer", type=int, default=6, help="the hook's block")
    ap.add_argument("--contexts", type=int, default=64, help="64-token eval contexts (a multiple of --batch)")
    ap.add_argument("--batch", type=int, default=8, help="contexts per forward pass")
    ap.add_argument("--save", help="also save the trained SAE to this folder (reuse it with --sae)")
    ap.add_argument("--out", default=str(RESULTS / "saebench.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    model, hook = load_model(), resid_hook(args.layer)
    docs = load_corpus("sotu")
    tok = model.tokenizer
    eval_ctx = make_contexts(docs[-40:], tok, 64, prepend_bos=True, progress=False)
    eval_ctx = eval_ctx[torch.randperm(len(eval_ctx), generator=torch.Generator().manual_seed(0))[: args.contexts]]
    if args.sae: sae, sae_note = load_sae(args.sae), args.sae
    else:
        train_ctx = make_contexts(docs[:-40], tok, 64, prepend_bos=True, progress=False)[:1024]
        sae = small_sae(model, hook, train_ctx, n_latents=1024, k=16, n_tokens=4 * 65536)
        if args.save: sae.save(args.save)
        sae_note = f"TopK n=1024 k=16, trained on {len(train_ctx) * 63} SOTU tokens (other speeches), 4 epochs"
    sae.eval()
    bench = to_saebench(sae, EMBEDDED_MODEL, hook_layer=args.layer, hook_name=hook)
    print(f"SAE: {sae_note}; eval: {tuple(eval_ctx.shape)} contexts; {time.perf_counter() - t0:.0f}s", flush=True)

    cfg = EvalConfig(parts=("activations", "downstream"), progress=False,
                     downstream=DownstreamEval(contexts=len(eval_ctx), batch_size=args.batch))
    acts = harvest(model, hook, eval_ctx, progress=False)
    report = evaluate(model, sae, hook, eval_ctx, cfg, acts=acts)
    ours, d, dens = report.values(), report.downstream, report.activations.density.double()
    same = saebench_formulas(sae, acts, len(eval_ctx), args.batch)
    aligned = our_ce_on_their_set(model, sae, hook, eval_ctx, args.batch)
    print("ours:", ours, same, aligned, f"{time.perf_counter() - t0:.0f}s", flush=True)

    sb = {}
    for excl in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            sb[excl] = run_core(model, bench, eval_ctx, args.batch, excl, Path(tmp))
    (RESULTS / "saebench_core.json").write_text(json.dumps(
        {f"exclude_special_tokens_from_reconstruction={k}": {kk: v[kk] for kk in ("eval_config", "eval_result_metrics")}
         for k, v in sb.items()}, indent=1, default=str))
    m, m0 = sb[True]["eval_result_metrics"], sb[False]["eval_result_metrics"]
    print("SAEBench:", json.dumps(m, indent=1), f"{time.perf_counter() - t0:.0f}s", flush=True)

    dens_sb = torch.tensor([r["feature_density"] for r in sb[True]["eval_result_details"]], dtype=torch.float64)
    f = lambda v, p=4: f"{v:.{p}f}"
    pr, rq, sp = m["model_performance_preservation"], m["reconstruction_quality"], m["sparsity"]
    kl, misc = m["model_behavior_preservation"], m["misc_metrics"]
    rows = [
        ("core", "L0", "yes", f(ours["l0"]), f(sp["l0"]), ("same tokens (positions 1-63; SAEBench masks BOS): "
         "must be equal")),
        ("core", "alive latents", "yes", f(1 - ours["dead_fraction"]), f(misc["frac_alive"]),
         "share of latents firing on these tokens; same definition"),
        ("core", "explained variance", "yes", f(1 - ours["fvu"]), f(rq["explained_variance"]),
         (f"ours = 1-FVU in the SAE's layer-normed input space (§2.1); raw space {f(same['ev_raw'])}; SAEBench's "
         f"formula (denominator E‖x‖² − (E‖x‖²/d)²) on our harvest gives {f(same['ev'])}")),
        ("core", "explained variance (legacy)", "yes", "—", f(rq["explained_variance_legacy"]),
         (f"per-token 1 − ‖x−x̂‖²/‖x−x̄‖² (x̄ per batch of {args.batch} contexts, in its shuffled order), averaged; "
          f"SAEBench's formula on our harvest gives {f(same['ev_legacy'])}")),
        ("core", "CE clean (nats)", "yes", f(ours["ce_clean"]), f(pr["ce_loss_without_sae"]),
         (f"ours averages 63 predictions per context, SAEBench 62 (it drops the one made at BOS); ours on its set: "
         f"{f(aligned['ce_clean'])}")),
        ("core", "CE with SAE", "yes", f(d.ce_spliced), f(pr["ce_loss_with_sae"]),
         (f"both splice positions 1-63 (SAEBench with exclude_special_tokens_from_reconstruction=True); ours on "
         f"its set: {f(aligned['ce_spliced'])}; SAEBench's default (also BOS reconstructed): "
         f"{f(m0['model_performance_preservation']['ce_loss_with_sae'])}")),
        ("core", "CE loss recovered", "yes", f(d.ce_recovered), f(pr["ce_loss_score"]),
         (f"zero ablation: ours zeroes positions 1-63, SAEBench every position (BOS too: CE "
         f"{f(pr['ce_loss_with_ablation'], 2)} vs ours {f(d.ce_zero, 2)}) and scores 62 predictions; ours with its "
         f"zero ablation on its set: {f(aligned['ce_recovered'])}; SAEBench default: "
         f"{f(m0['model_performance_preservation']['ce_loss_score'])}")),
        ("core", "KL(clean‖SAE)", "yes", f(d.kl), f(kl["kl_div_with_sae"]),
         (f"same prediction-set difference as CE; ours on its set: {f(aligned['kl'])} (SAEBench takes log(softmax) "
         f"in float32, we log_softmax: the small rest)")),
    ]
    rows += [("core", "dense latents (>1%)", "yes", f(ours["dense_fraction"]), f(misc["freq_over_1_percent"]),
              "share of latents firing on more than 1% of tokens; same definition"),
             ("core", "latent density", "yes", "—", f"max abs diff {(dens_sb - dens).abs().max().item():.1e}",
              "per-latent firing rates, ours vs SAEBench's `feature_density` (rounded in its JSON)")]
    rows += [(name, "—", "no", "—", "—", why) for name, why in OFFLINE]
    text = (f"# SAEBench evaluations offline\n\nsae-bench 0.6.0 (installed --no-deps in .venv-bench) on the embedded "
            f"SmolLM2-135M at `{hook}`, {len(eval_ctx)} SOTU contexts of 64 tokens (BOS first; "
            f"{len(eval_ctx) * 63} scored tokens, speeches the SAE was not trained on). SAE: {sae_note}.\n"
            f"SAEBench's `core` eval runs unchanged (`multiple_evals`), with its model loader returning the local "
            f"model and a local pre-tokenized `datasets.Dataset`; ours is `topk_sae.evaluate` (parts activations, "
            f"downstream) on the same tokens.\n\n"
            + table(rows) + f"\nRegenerate: `PYTHONPATH=$PWD HF_HUB_OFFLINE=1 .venv-bench/bin/python "
            f"bench/saebench_evals.py` ({time.perf_counter() - t0:.0f} s on 2 shared CPU cores). SAEBench's JSON: "
            f"bench/results/saebench_core.json.\n")
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
