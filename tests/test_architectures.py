"""BatchTopK and Matryoshka SAEs: losses against written-out references, the sparse kernels against autograd,
batch-independent inference, and the same loop as TopK (checkpoints, resume, save/load, metrics, bad input)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import assert_steps_match, steps_by_kernel
from safetensors.torch import load_file, save_file

from topk_sae.activations import TensorSource
from topk_sae.batchtopk import BatchTopKSAE, batch_topk
from topk_sae.losses import LossInputs
from topk_sae.matryoshka import MatryoshkaConfig, MatryoshkaSAE, prefix_fvu
from topk_sae.metrics import evaluate_acts, progressive_recovery
from topk_sae.model import SAEConfig, load_sae
from topk_sae.relu import ReLUSAEConfig
from topk_sae.train import TrainConfig, train

WORKER = Path(__file__).parent / "workers" / "arch_worker.py"
ARCHS = {"batchtopk": lambda cfg, **kw: BatchTopKSAE(cfg, **kw),
         "matryoshka": lambda cfg, **kw: MatryoshkaSAE(cfg, prefixes=(4, 16, cfg.n_latents), **kw)}


def toy(n_tok: int = 4096, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(64, 16, generator=g), dim=1)
    return (torch.rand(n_tok, 64, generator=g) * (torch.rand(n_tok, 64, generator=g) < 0.05)) @ dirs * 10 + 3


def reference_loss(sae, x: torch.Tensor, var0: float, dead: torch.Tensor, k_aux: int, aux_coef: float,
                   prefixes: tuple[int, ...]) -> torch.Tensor:
    "The BatchTopK/Matryoshka loss token by token in plain torch: batch selection, per-prefix MSE, AuxK."
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    cut = pre.flatten().sort(descending=True).values[len(x) * sae.cfg.k - 1]
    z = torch.where(pre >= cut, pre, torch.zeros_like(pre)).clamp_min(0)
    losses = []
    for m in prefixes:
        x_hat = torch.stack([z[b, :m] @ sae.W_dec[:m] + sae.b_dec for b in range(len(x))])
        losses.append(((x_hat - x) ** 2).mean() / var0)
    residual = (x - x_hat).detach()
    candidates = dead & ~(z > 0).any(0)
    aux_hat = []
    for b in range(len(x)):
        cols = [j for j in range(sae.cfg.n_latents) if candidates[j]]
        vals = torch.stack([pre[b, j] for j in cols])
        top = vals.topk(min(k_aux, len(cols)))
        rows = [top.values[i].clamp_min(0) * sae.W_dec[cols[top.indices[i]]] for i in range(len(top.values))]
        aux_hat.append(sum(rows))
    aux = ((torch.stack(aux_hat) - residual) ** 2).mean() / (residual - residual.mean(0)).pow(2).mean()
    return torch.stack(losses).mean() + aux_coef * aux


@pytest.mark.parametrize("arch", list(ARCHS))
def test_loss_matches_a_written_out_reference(arch):
    cfg = SAEConfig(d_model=8, n_latents=32, k=3, normalize="none")
    sae = ARCHS[arch](cfg, dtype=torch.float64)
    x = torch.randn(24, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 + 0.5
    dead = torch.arange(32) % 3 == 0
    out = sae.training_loss(x, LossInputs(var0=1.7, dead=dead, k_aux=4, aux_coef=0.25))
    prefixes = sae.cfg.prefixes if arch == "matryoshka" else (32,)
    ref = reference_loss(sae, x, 1.7, dead, 4, 0.25, prefixes)
    torch.testing.assert_close(out.loss, ref, rtol=1e-6, atol=1e-7)  # the loss is taken in float32, as TopK's
    assert out.aux.item() > 0


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("path", ["cpu", "cuda-path"])
def test_sparse_training_steps_match_dense(arch, path, monkeypatch):
    if path == "cuda-path": monkeypatch.setenv("TOPK_SAE_KERNELS", "cuda-path")  # the GPU's op sequence, on the CPU
    base = ARCHS[arch](SAEConfig(d_model=8, n_latents=32, k=3), seed=3, dtype=torch.float64)
    x = torch.randn(96, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3 + 1
    base.init_from_data_(x)
    sparse, dense = (steps_by_kernel(base, x, impl, all_dead=True) for impl in ("sparse", "dense"))
    assert_steps_match(sparse, dense)
    assert sparse[0][0].aux.item() > 0  # AuxK ran


@pytest.mark.parametrize("seed", range(5))
def test_batch_topk_keeps_exactly_k_per_token_on_average(seed):
    g = torch.Generator().manual_seed(seed)
    tok, n, k = int(torch.randint(1, 40, (1,), generator=g)), int(torch.randint(8, 50, (1,), generator=g)), 3
    pre = torch.randn(tok, n, generator=g)
    top = batch_topk(pre, k)
    assert torch.isfinite(top.acts).sum().item() == tok * k
    assert all(len(set(row.tolist())) == len(row) for row in top.idx)  # distinct latents per token, padding too
    kept = torch.zeros_like(pre).scatter(1, top.idx, torch.where(torch.isfinite(top.acts), 1.0, 0.0))
    assert pre[kept.bool()].min() >= pre[~kept.bool()].max()  # the batch's largest entries


def test_batch_topk_is_exact_when_one_token_takes_most_of_the_batch():
    pre = torch.randn(10, 200, generator=torch.Generator().manual_seed(0))
    pre[3] += 100  # token 3 outranks every other: it takes all 10 * 5 = 50 entries, beyond its 4 * 5 candidates
    top = batch_topk(pre, 5)
    assert torch.isfinite(top.acts).sum(1).tolist() == [0, 0, 0, 50, 0, 0, 0, 0, 0, 0]
    assert set(top.idx[3].tolist()) == set(pre[3].topk(50).indices.tolist())


def test_training_code_has_mean_k_and_inference_is_batch_independent():
    sae = BatchTopKSAE(SAEConfig(d_model=16, n_latents=64, k=4))
    with torch.no_grad(): sae.b_enc.fill_(5.0)  # every pre-activation positive: every kept entry fires
    x = toy(256)
    x_n, _ = sae.normalize(x)
    out = sae.training_loss(x_n, LossInputs(var0=1.0))
    per_token = (out.top.acts > 0).sum(1)
    assert per_token.sum().item() == 256 * 4 and per_token.min() < 4 < per_token.max()
    assert sae.threshold.item() > 5.0
    assert not sae.training  # built for inference: a token's code is its own
    batch = sae.encode(x[:32])
    alone = torch.cat([sae.encode(x[i:i + 1]) for i in range(32)])
    torch.testing.assert_close(alone, batch, rtol=1e-6, atol=1e-6)
    assert ((batch > 0) == (sae.pre_acts(x_n[:32]) > sae.threshold)).all()
    sae.train()
    assert (sae.encode(x[:32]) > 0).sum().item() == 32 * 4  # train mode: the batch selection


class Crash(Exception): pass


class CrashingSource(TensorSource):
    "Batches until `stop`, then an error: a run killed after its last checkpoint."
    def __init__(self, acts, stop): super().__init__(acts); self.stop = stop
    def batches(self, batch_tokens, seed=0, start=0):
        for i, b in enumerate(super().batches(batch_tokens, seed, start)):
            if start + i == self.stop: raise Crash
            yield b


@pytest.mark.parametrize("arch", list(ARCHS))
def test_checkpoint_resume_equals_an_uninterrupted_run(arch, tmp_path):
    acts, cfg = toy(), SAEConfig(d_model=16, n_latents=64, k=4)
    kw = {"n_tokens": 16 * 256, "dead_tokens": 512, "progress": False}
    whole = train(ARCHS[arch](cfg), acts, TrainConfig.tiny(**kw))
    ckpt = TrainConfig.tiny(**kw, checkpoint_every=5 * 256, checkpoint_dir=str(tmp_path / "c"), resume=True)
    with pytest.raises(Crash): train(ARCHS[arch](cfg), CrashingSource(acts, 12), ckpt)
    assert torch.load(tmp_path / "c" / "trainer.pt", weights_only=True)["step"] == 10
    resumed = train(ARCHS[arch](cfg), acts, ckpt)
    for key, v in whole.raw.state_dict().items():
        torch.testing.assert_close(resumed.raw.state_dict()[key], v, rtol=1e-6, atol=1e-7, msg=key)
    for key, v in whole.sae.state_dict().items():
        torch.testing.assert_close(resumed.sae.state_dict()[key], v, rtol=1e-6, atol=1e-7, msg=key)
    assert whole.raw.threshold.item() > 0 and whole.history.l0.iloc[-1] == pytest.approx(4.0, abs=0.05)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_save_load_round_trip_and_metrics(arch, tmp_path):
    acts = toy()
    res = train(ARCHS[arch](SAEConfig(d_model=16, n_latents=64, k=4)), acts[:3000], TrainConfig.tiny(n_tokens=4096))
    back = load_sae(res.sae.save(tmp_path / "sae"))
    assert type(back) is type(res.sae) and back.cfg == res.sae.cfg and not back.training
    torch.testing.assert_close(back.threshold, res.sae.threshold, rtol=0, atol=0)
    torch.testing.assert_close(back.jumprelu_threshold(), res.sae.threshold.expand(64))
    torch.testing.assert_close(back(acts[3000:3100]), res.sae(acts[3000:3100]), rtol=0, atol=0)
    m = evaluate_acts(back, acts[3000:])
    assert 0 < m.fvu < 1 and 0 < m.l0 < 16
    assert len(progressive_recovery(back, acts[3000:])) == 5
    if arch == "matryoshka":
        assert back.cfg.prefixes == (4, 16, 64)
        assert json.loads((tmp_path / "sae" / "cfg.json").read_text())["prefixes"] == [4, 16, 64]
        table = prefix_fvu(back, acts[3000:])
        assert table.fvu.iloc[-1] == pytest.approx(m.fvu) and table.fvu.is_monotonic_decreasing


def test_a_saved_batchtopk_without_its_threshold_is_refused(tmp_path):
    path = BatchTopKSAE(SAEConfig.tiny()).save(tmp_path / "sae")
    state = load_file(path / "sae.safetensors")
    del state["threshold"]
    cfg = json.loads((path / "cfg.json").read_text())
    save_file(state, path / "sae.safetensors", metadata={"cfg": json.dumps(cfg)})
    with pytest.raises(ValueError, match=r"without its inference 'threshold'.*calibrate_threshold_\(acts\)"):
        load_sae(path)


def test_bad_matryoshka_prefixes_in_a_saved_config_are_refused(tmp_path):
    path = MatryoshkaSAE(SAEConfig.tiny()).save(tmp_path / "sae")
    cfg = json.loads((path / "cfg.json").read_text())
    bad = {**cfg, "prefixes": [4, 60]}
    (path / "cfg.json").write_text(json.dumps(bad))
    save_file(load_file(path / "sae.safetensors"), path / "sae.safetensors", metadata={"cfg": json.dumps(bad)})
    with pytest.raises(ValueError, match="ending at n_latents=64"):
        load_sae(path)


def test_options_that_do_not_apply_are_refused():
    acts = toy(2048)
    with pytest.raises(TypeError, match=r"pass SAEConfig\(d_model, n_latents, k\)"):
        BatchTopKSAE(ReLUSAEConfig(d_model=16, n_latents=64))
    with pytest.raises(TypeError, match="pass MatryoshkaConfig"):
        MatryoshkaSAE(ReLUSAEConfig(d_model=16, n_latents=64))
    with pytest.raises(ValueError, match="give them once"):
        MatryoshkaSAE(MatryoshkaConfig(16, 64, 4), prefixes=(8, 64))
    with pytest.raises(ValueError, match="strictly increasing"):
        MatryoshkaSAE(SAEConfig.tiny(), prefixes=(16, 8, 64))
    for arch in ARCHS.values():
        with pytest.raises(ValueError, match="multi_topk=False"):
            train(arch(SAEConfig.tiny()), acts, TrainConfig.tiny(n_tokens=512, multi_topk=True))
        with pytest.raises(ValueError, match="encoder_chunk=16 does not apply"):
            train(arch(SAEConfig.tiny()), acts, TrainConfig.tiny(n_tokens=512, encoder_chunk=16))
    with pytest.raises(ValueError, match="pass prefixes="):
        prefix_fvu(BatchTopKSAE(SAEConfig.tiny()), acts)


@pytest.mark.slow
def test_two_gloo_processes_agree(tmp_path):
    "Under data parallelism each rank selects from its own slice; the ranks still end with equal weights and threshold."
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           str(tmp_path / "out")]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    for arch in ARCHS:
        ranks = [load_file(tmp_path / f"out.{arch}.rank{i}.safetensors") for i in range(2)]
        for key, v in ranks[0].items(): torch.testing.assert_close(ranks[1][key], v, rtol=0, atol=0, msg=key)
        assert ranks[0]["threshold"].item() > 0


def test_threshold_codes_of_several_batches_are_padded_to_one_width():
    "explain.sparse_codes (N2G, the latent index) joins batches whose threshold codes have different widths."
    from topk_sae.explain import sparse_codes
    from topk_sae.model import to_dense
    sae = BatchTopKSAE(SAEConfig(d_model=16, n_latents=64, k=4))
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(): sae.threshold.fill_(0.3)
    code = sparse_codes(sae, x, batch_tokens=64)
    widths = {sae.encode_topk(sae.normalize(b)[0]).idx.shape[1] for b in x.split(64)}
    assert len(widths) > 1 and code.idx.shape == (300, max(widths))
    torch.testing.assert_close(to_dense(code, 64), sae.encode(x))


def test_load_sae_imports_the_architecture_module_it_needs(tmp_path):
    """A saved BatchTopK, Matryoshka, JumpReLU, ReLU SAE or transcoder loads in a fresh interpreter that imported
    only `topk_sae.model`: `load_sae` imports the defining module itself."""
    from topk_sae.jumprelu import JumpReLUConfig, JumpReLUSAE
    from topk_sae.relu import ReLUSAE
    saes = {"batchtopk": BatchTopKSAE(SAEConfig.tiny()), "matryoshka": MatryoshkaSAE(SAEConfig.tiny()),
            "jumprelu": JumpReLUSAE(JumpReLUConfig.tiny()), "relu": ReLUSAE(ReLUSAEConfig(d_model=16, n_latents=64))}
    for name, sae in saes.items(): sae.save(tmp_path/name)
    code = ("from topk_sae.model import load_sae\n"
            f"print(*(type(load_sae(r'{tmp_path}/' + n)).__name__ for n in {sorted(saes)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [type(saes[n]).__name__ for n in sorted(saes)]
