"""The accelerator path: run on CUDA when there is one, skipped otherwise (CI has none).

On a GPU the training step takes other kernels than on the CPU (cuSPARSE products for the sparse backward,
embedding_bag's backward for the decoder, no reused workspace) and bf16 autocast by default. These tests check,
on the device: the sparse step equals plain autograd (float64), bf16 training keeps fp32 master weights and
learns as well as fp32, the losses stay fp32 under autocast, inference equals the CPU, and harvesting with
pinned memory equals a CPU harvest. `TOPK_SAE_TEST_DEVICE=cpu pytest tests/test_gpu.py` runs the same checks
on the CPU (the bf16 ones then run under CPU autocast), which is how their logic is tested without a GPU.
`tools/gpu_check.sh` runs this file and `bench/gpu.py` in one go on a lent GPU machine.
"""
import copy
import os
from dataclasses import replace

import pytest
import torch
from helpers import assert_steps_match, steps_by_kernel  # the same sparse-against-dense comparison as on the CPU

from topk_sae.activations import TensorSource
from topk_sae.core import get_device
from topk_sae.kernels import encode_for_training
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.train import TrainConfig, TrainState, autocast_for, train

DEVICE = os.environ.get("TOPK_SAE_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
pytestmark = pytest.mark.skipif(DEVICE is None, reason="no CUDA device (TOPK_SAE_TEST_DEVICE=cpu runs them on the CPU)")


def sparse_data(tok: int, d: int, n_true: int, k_true: int, seed: int = 0) -> torch.Tensor:
    "Activations an SAE can learn: `k_true` of `n_true` unit directions per token, positive weights, a little noise."
    g = torch.Generator().manual_seed(seed)
    D = torch.nn.functional.normalize(torch.randn(n_true, d, generator=g), dim=1)
    idx = torch.stack([torch.randperm(n_true, generator=g)[:k_true] for _ in range(tok)])
    codes = torch.zeros(tok, n_true).scatter_(1, idx, torch.rand(tok, k_true, generator=g) * 2 + 0.5)
    return codes @ D + 0.01 * torch.randn(tok, d, generator=g)


def test_default_device_is_the_gpu():
    if DEVICE != "cuda": pytest.skip("only meaningful on CUDA")
    assert get_device().type == "cuda"
    cfg = TrainConfig(n_tokens=4096)
    bf16 = torch.cuda.get_device_capability() >= (8, 0)  # precision "auto": bf16 where the GPU has bf16 units
    assert isinstance(autocast_for(cfg, torch.device("cuda")), torch.autocast) == bf16


@pytest.mark.parametrize("d,n,multi", [(8, 9, False), (24, 97, True), (64, 1000, False), (48, 4100, True)])
def test_sparse_steps_equal_dense_steps(d, n, multi):
    "Four float64 training steps (AuxK active, Multi-TopK on half the cases) end at the same weights by either kernel."
    k = max(1, n // 8) if n < 1000 else 16
    base = TopKSAE(SAEConfig(d_model=d, n_latents=n, k=k), seed=n, dtype=torch.float64).to(DEVICE)
    x = (torch.randn(256, d, generator=torch.Generator().manual_seed(n), dtype=torch.float64) * 3 + 1).to(DEVICE)
    base.init_from_data_(x)
    sparse, dense = (steps_by_kernel(base, x, impl, all_dead=True, multi_topk=multi, precision="fp32")
                     for impl in ("sparse", "dense"))
    if n >= 1000:  # AuxK ran (at small n every latent fires somewhere in the batch)
        assert sparse[0][0].aux.item() > 0 and dense[0][0].aux.item() > 0
    assert_steps_match(sparse, dense)


def test_losses_stay_fp32_under_autocast():
    sae = TopKSAE(SAEConfig(d_model=32, n_latents=512, k=8)).to(DEVICE)
    x = torch.randn(256, 32, device=DEVICE)
    sae.init_from_data_(x)
    cfg = TrainConfig(n_tokens=1024, batch_tokens=256, dead_tokens=256, precision="bf16", progress=False)
    state = TrainState.start(sae, cfg, x)
    state.dead.since += 10**6  # every latent dead: AuxK runs too
    x_n, _ = sae.normalize(x)
    with autocast_for(cfg, sae.device):
        codes = encode_for_training(sae, x_n, 8)
        out = sae.training_loss(x_n, state.loss_inputs(len(x)))
    assert codes.top.acts.dtype == torch.bfloat16  # the encoder product ran in bf16 ...
    assert out.loss.dtype == out.fvu.dtype == out.aux.dtype == torch.float32  # ... the losses in fp32
    assert out.aux.item() > 0


def test_bf16_training_learns_like_fp32():
    "bf16 autocast (the default on CUDA) keeps fp32 master weights on the device and ends within 5% of fp32's FVU."
    x = sparse_data(32768, 64, 256, 4)
    results = {}
    for precision in ("bf16", "fp32"):
        sae = TopKSAE(SAEConfig(d_model=64, n_latents=512, k=8), seed=0).to(DEVICE)
        cfg = TrainConfig(n_tokens=4 * 32768, batch_tokens=1024, precision=precision, progress=False)
        res = train(sae, x.to(DEVICE), cfg)
        device_type = torch.device(DEVICE).type
        assert all(p.dtype == torch.float32 and p.device.type == device_type for p in res.sae.parameters())
        assert torch.isfinite(torch.tensor(res.history.loss.values)).all()
        with torch.no_grad():
            xh = res.sae(x.to(DEVICE))
        results[precision] = ((xh - x.to(DEVICE)).pow(2).sum() / (x - x.mean(0)).pow(2).sum().to(DEVICE)).item()
    assert results["fp32"] < 0.2  # the data is learnable: the comparison below means something
    assert results["bf16"] < 1.05 * results["fp32"] + 0.005, results


def test_inference_on_the_device_equals_the_cpu():
    sae = TopKSAE(SAEConfig(d_model=48, n_latents=1000, k=12), seed=3)
    x = torch.randn(512, 48) * 2 + 1
    sae.init_from_data_(x)
    with torch.no_grad():
        ref, ref_top = sae(x), sae.encode_topk(x)
        dev = copy.deepcopy(sae).to(DEVICE)
        out, top = dev(x.to(DEVICE)), dev.encode_topk(x.to(DEVICE))
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)
    got = torch.zeros(512, 1000).scatter_(1, top.idx.cpu(), top.acts.cpu())
    want = torch.zeros(512, 1000).scatter_(1, ref_top.idx, ref_top.acts)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)  # same latents and values (order in a row may vary)


def test_host_activations_work_with_an_sae_on_the_device():
    "Harvests land on the host: an SAE on the GPU takes them and hands its results back on the host."
    sae = TopKSAE(SAEConfig(d_model=48, n_latents=1000, k=12), seed=3)
    x = torch.randn(64, 48) * 2 + 1
    with torch.no_grad():
        ref, ref_z = sae(x), sae.encode(x)
        dev = copy.deepcopy(sae).to(DEVICE)
        out, z = dev(x), dev.encode(x)
    assert out.device == x.device and z.device == x.device
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(z, ref_z, rtol=1e-4, atol=1e-4)


def test_harvest_on_the_device_equals_the_cpu(tmp_path, monkeypatch):
    "Pinned-memory harvesting from a model on the device gives the activations a CPU harvest gives."
    pytest.importorskip("transformer_lens")
    monkeypatch.setenv("TOPK_SAE_CACHE", str(tmp_path))
    from topk_sae.activations import harvest
    from topk_sae.lm import load_model, resid_hook
    cpu = load_model("tiny", device="cpu")
    dev = load_model("tiny", device="cpu").to(DEVICE)  # the same seeded weights, moved
    ctx = torch.randint(0, cpu.cfg.d_vocab, (24, 16), generator=torch.Generator().manual_seed(0))
    a = harvest(cpu, resid_hook(1), ctx, batch_size=8, progress=False)
    b = harvest(dev, resid_hook(1), ctx, batch_size=8, progress=False)
    assert b.device.type == "cpu"
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


class StoppingSource(TensorSource):
    "A tensor source whose stream breaks after `stop_after` batches, like a pre-empted job."
    def __init__(self, acts, stop_after):
        super().__init__(acts)
        self.stop_after = stop_after

    def batches(self, batch_tokens, seed=0, start=0):
        for i, b in enumerate(super().batches(batch_tokens, seed, start)):
            if start + i == self.stop_after: raise RuntimeError("pre-empted")
            yield b


def test_a_run_resumed_on_the_device_ends_where_an_unbroken_one_ends(tmp_path):
    "The checkpoint is read back onto the SAE's own device (a torchrun rank loads onto its GPU, not the saver's)."
    x = sparse_data(8192, 32, 128, 4)
    cfg = TrainConfig(n_tokens=16 * 256, batch_tokens=256, checkpoint_every=4 * 256, checkpoint_dir=str(tmp_path / "c"),
                      resume=True, progress=False)
    def sae(): return TopKSAE(SAEConfig(d_model=32, n_latents=256, k=8), device=DEVICE)
    whole = train(sae(), x, replace(cfg, checkpoint_dir=str(tmp_path / "whole")))
    with pytest.raises(RuntimeError, match="pre-empted"): train(sae(), StoppingSource(x, 10), cfg)
    resumed = train(sae(), x, cfg)
    assert resumed.sae.W_dec.device.type == torch.device(DEVICE).type
    torch.testing.assert_close(resumed.raw.W_dec, whole.raw.W_dec, rtol=1e-4, atol=1e-5)


def test_a_bf16_step_at_a_million_latents():
    "n 2^20 (d 256): indices past what 32-bit offsets into the decoder would hold at d 4096; the step stays finite."
    if DEVICE != "cuda": pytest.skip("a GPU-sized step (about 11 GB)")
    x = sparse_data(4096, 256, 1024, 8).to(DEVICE)
    sae = TopKSAE(SAEConfig(d_model=256, n_latents=2**20, k=32), device=DEVICE)
    cfg = TrainConfig(n_tokens=10**6, batch_tokens=1024, precision="bf16", dead_tokens=2048, progress=False)
    state = TrainState.start(sae, cfg, x)
    state.dead.since.fill_(10**6)  # every latent a candidate: AuxK runs in the step
    out = state.step(x[:1024])
    torch.cuda.synchronize()
    assert torch.isfinite(out.loss) and out.aux.item() > 0 and int(out.top.idx.max()) > 2**19
