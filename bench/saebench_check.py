"""SAEBench's own checks on a topk_sae SAE wrapped by `to_saebench` (run with .venv-bench/bin/python).

    .venv-bench/bin/python bench/saebench_check.py [--sae FOLDER --model smollm2 --layer 22]

Without --sae, a TopK SAE is trained for a few steps on SmolLM2 (the embedded model) at layer 6. SAEBench's `test_sae` loads its model
with `HookedTransformer.from_pretrained`, which needs the hub; here its loader is pointed at the local model.
"""
import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

from topk_sae.activations import harvest
from topk_sae.data import SOTU_SLICE, load_corpus, make_contexts
from topk_sae.lm import EMBEDDED_MODEL, load_model, resid_hook
from topk_sae.model import SAEConfig, TopKSAE, load_sae
from topk_sae.saebench import to_saebench
from topk_sae.train import TrainConfig, train


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sae", help="a folder written by sae.save (default: train a small one on the tiny model)")
    ap.add_argument("--model", default=EMBEDDED_MODEL, help="load_model name (the SAE's model)")
    ap.add_argument("--layer", type=int, default=6, help="the hook's block")
    args = ap.parse_args()
    try:
        from sae_bench.custom_saes import base_sae
    except ImportError:
        print("sae-bench is not installed here: run tools/install_bench.sh and use .venv-bench/bin/python")
        return 2
    model, hook = load_model(args.model), resid_hook(args.layer)
    if args.sae: sae = load_sae(args.sae)
    else:
        ctx = make_contexts(load_corpus(str(SOTU_SLICE))[:8], model.tokenizer, 33, progress=False)[:128]
        acts = harvest(model, hook, ctx, progress=False)
        sae = train(TopKSAE(SAEConfig(d_model=model.cfg.d_model, n_latents=256, k=8, hook=hook)), acts,
                    TrainConfig.tiny(n_tokens=4096, batch_tokens=256, init_tokens=1024)).sae
    bench = to_saebench(sae, args.model, hook_layer=args.layer, hook_name=hook)
    assert isinstance(bench, base_sae.BaseSAE), type(bench).__mro__
    base_sae.HookedTransformer.from_pretrained = staticmethod(lambda name, **kw: model)  # no hub here
    print("isinstance BaseSAE:", isinstance(bench, base_sae.BaseSAE))
    print("check_decoder_norms:", bench.check_decoder_norms())
    with torch.no_grad(): bench.test_sae(args.model)  # SAEBench's own assertions (forward == decode(encode))
    print("test_sae: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
