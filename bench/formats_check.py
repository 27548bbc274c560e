"""dictionary_learning's own classes against `topk_sae.interop.load_dictionary_learning`.

    python bench/formats_check.py --dictionary-learning CHECKOUT

CHECKOUT is a source checkout of github.com/saprmarks/dictionary_learning (its package is not on PyPI under that
name, and its `__init__` imports nnsight; only `dictionary.py` and the trainers' dictionary classes are imported here).
Each class is built with random weights (decoder rows of norms 0.2 to 4 where its training leaves them free), saved as
its trainer saves it (`ae.pt` = the state dict, `config.json` = {"trainer": {"dict_class": ...}}), read back with
`load_dictionary_learning`, and its own forward and encode are compared with ours on random activations.
The SAELens counterparts run in tests/test_interop_formats.py wherever `sae_lens` is installed (.venv-bench).
"""
import argparse
import json
import sys
import tempfile
import types
from pathlib import Path

import torch

from topk_sae.interop import load_dictionary_learning

D, N = 32, 128


def import_classes(checkout: Path) -> dict:
    "dictionary_learning's SAE classes, imported from a checkout without running its package `__init__`."
    for name, sub in (("dictionary_learning", ""), ("dictionary_learning.trainers", "trainers")):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(checkout / "dictionary_learning" / sub)]
        sys.modules[name] = pkg
    from dictionary_learning.dictionary import AutoEncoder, GatedAutoEncoder, JumpReluAutoEncoder
    from dictionary_learning.trainers.batch_top_k import BatchTopKSAE
    from dictionary_learning.trainers.matryoshka_batch_top_k import MatryoshkaBatchTopKSAE
    from dictionary_learning.trainers.top_k import AutoEncoderTopK
    return {"AutoEncoder": lambda: AutoEncoder(D, N), "AutoEncoderTopK": lambda: AutoEncoderTopK(D, N, 6),
            "BatchTopKSAE": lambda: BatchTopKSAE(D, N, 6),
            "MatryoshkaBatchTopKSAE": lambda: MatryoshkaBatchTopKSAE(D, N, 6, [16, 48, 64]),
            "GatedAutoEncoder": lambda: GatedAutoEncoder(D, N),
            "JumpReluAutoEncoder": lambda: JumpReluAutoEncoder(D, N)}


@torch.no_grad()
def randomize_(ae, free_rows: bool, g: torch.Generator) -> None:
    "Random parameters; decoder rows (dictionary atoms) of norms 0.2 to 4 if `free_rows`, else unit norm."
    for name, p in ae.named_parameters(): p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.ndim == 1 else 1))
    W = ae.decoder.weight if hasattr(ae, "decoder") else ae.W_dec.T  # (d, n): a column per latent
    W.copy_(torch.nn.functional.normalize(W, dim=0) * (torch.linspace(0.2, 4, N) if free_rows else 1))
    if hasattr(ae, "threshold"): ae.threshold.copy_(torch.rand(ae.threshold.shape, generator=g) * 0.5)


def decoder_norms(ae) -> torch.Tensor:
    return (ae.decoder.weight if hasattr(ae, "decoder") else ae.W_dec.T).norm(dim=0)


def check(name: str, make, free_rows: bool, tmp: Path) -> tuple[str, float, float, str]:
    "Max abs differences of the forward pass and of the code (theirs times the row norms we fold into it)."
    g = torch.Generator().manual_seed(0)
    ae = make()
    randomize_(ae, free_rows, g)
    folder = tmp / f"{name}_{free_rows}"
    folder.mkdir()
    torch.save({k: v.cpu() for k, v in ae.state_dict().items()}, folder / "ae.pt")
    (folder / "config.json").write_text(json.dumps({"trainer": {"dict_class": name, "lm_name": "pythia-70m"}}))
    ours = load_dictionary_learning(folder)
    x = torch.randn(256, D, generator=g) * 2
    with torch.no_grad():
        out_err = (ours(x) - ae(x)).abs().max().item()
        code_err = (ours.encode(x) - ae.encode(x) * decoder_norms(ae)).abs().max().item()
        if name in ("BatchTopKSAE", "MatryoshkaBatchTopKSAE") and not free_rows:  # training: the batch's top k * B
            batch_err = (ours.train().encode(x) - ae.encode(x, use_threshold=False)).abs().max().item()
            code_err = max(code_err, batch_err)
    return name, out_err, code_err, type(ours).__name__


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dictionary-learning", type=Path, required=True, help="a source checkout of dictionary_learning")
    args = ap.parse_args()
    classes = import_classes(args.dictionary_learning)
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in classes.items():
            for free_rows in (False, True):
                if free_rows and name == "AutoEncoderTopK": continue  # TopK has no exact fold: rows copied as given
                n, out_err, code_err, ours = check(name, make, free_rows, Path(tmp))
                good = out_err < 1e-3 and code_err < 1e-3
                ok &= good
                rows.append(f"| {n} | {'free' if free_rows else 'unit'} | {ours} | {out_err:.1e} | {code_err:.1e} | "
                            f"{'ok' if good else 'MISMATCH'} |")
    print("| dict_class | decoder rows | read as | max abs diff of forward | of code (x row norm) | |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
