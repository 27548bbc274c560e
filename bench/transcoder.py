"""Transcoder against SAE on SmolLM2's block-22 MLP: runs the tutorial nbs/tutorials/transcoders.ipynb with its slow
cells, saves its outputs in place, and writes the table to bench/results/transcoder.md.

    python bench/transcoder.py            # about six minutes on 2 CPU cores
    python bench/transcoder.py --smoke    # the same cells on a few thousand tokens; writes nothing
"""
import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory

ROOT = Path(__file__).resolve().parent.parent
NB = ROOT / "nbs" / "tutorials" / "transcoders.ipynb"
OUT = ROOT / "bench" / "results" / "transcoder.md"


def slim(nb) -> None:
    "Drop what a notebook should not keep: plotly.js inlined by the notebook renderer, and empty results."
    for cell in nb.cells:
        keep = []
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if o.get("output_type") in ("execute_result", "display_data") and not data: continue
            html = "".join(data.get("text/html", ""))  # a string, or the notebook's list of lines
            if set(data) == {"text/html"} and len(html) > 100_000: continue
            keep.append(o)
        if "outputs" in cell: cell.outputs = keep


SMOKE = "TRAIN_TOKENS, HELDOUT_TOKENS, N_LATENTS, EVAL_CONTEXTS = 2048, 1024, 256, 2"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny budgets, to check the cells run; writes nothing")
    smoke = ap.parse_args().smoke
    nb, shell = read_nb(NB), CaptureShell(NB)
    constants = next(i for i, c in enumerate(nb.cells) if c.source.startswith("TRAIN_TOKENS"))
    start = time.perf_counter()
    with working_directory(NB.parent):
        smoke_code = nb.cells[constants].source + "\n" + SMOKE if smoke else None  # the cell, then its overrides
        shell.run_all(nb, exc_stop=True, inject_code=smoke_code, inject_idx=constants)
    seconds = time.perf_counter() - start
    ns = shell.user_ns
    if smoke:
        print(ns["table"].to_string(), f"\n{seconds:.0f} s")
        return 0
    slim(nb)
    write_nb(nb, NB)
    subprocess.run([str(Path(sys.executable).parent / "nbdev_clean"), "--fname", str(NB)], cwd=ROOT, check=True)
    table, zero = ns["table"], ns["losses"]["SAE"]
    import torch
    how = (f"`python bench/transcoder.py` (runs nbs/tutorials/transcoders.ipynb; {seconds:.0f} s wall, "
           f"{time.process_time() / 60:.0f} CPU-minutes, {torch.get_num_threads()} threads, load average "
           f"{os.getloadavg()[0]:.1f} at the end, {platform.machine()}, torch {torch.__version__}).")
    budget = (f"n_latents {ns['N_LATENTS']}, k {ns['K']}, {len(ns['pairs']):,} harvested tokens x 2 passes "
              f"(batch {ns['BATCH_TOKENS']}), tuned defaults; held-out FVU on {len(ns['held_pairs']):,} tokens of "
              f"held-out speeches, downstream loss (arXiv:2406.04093 §4.1) on {zero.n_predictions:,} predicted tokens.")
    lines = [f"### Transcoder against SAE: SmolLM2-135M-Instruct block {ns['layer']}'s MLP, L0 {ns['K']}",
             how, budget, "",
             "| dictionary | reads | L0 | FVU (MLP out) | delta CE | KL | CE recovered | train tokens | n | k |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in table.iterrows():
        lines.append(f"| {name} | `{r['reads']}` | {r['L0']:.1f} | {r['FVU (MLP out)']:.3f} | {r['delta CE']:.4f} | "
                     f"{r['KL']:.4f} | {r['CE recovered (vs zero MLP)']:.3f} | {r['train tokens']:,} | "
                     f"{r['n_latents']} | {r['k']} |")
    ablations = (f"Clean CE {zero.ce_clean:.4f}; zero-ablating the MLP costs {zero.ce_zero - zero.ce_clean:.4f} "
                 f"nats, mean-ablating it {zero.ce_mean - zero.ce_clean:.4f}.")
    lines += ["", ablations]
    OUT.write_text("\n".join(lines) + "\n")
    print(OUT.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
