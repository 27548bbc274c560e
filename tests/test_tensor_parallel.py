"""Tensor parallelism on the CPU with gloo: 2 and 4 processes (tensor parallel 2, 4, and 2 x 2 with data
parallelism) train 24 steps with AuxK and Multi-TopK to the weights of one process, save one whole SAE,
and resume after a kill; bad layouts are refused before any work; 2 shards evaluate (every part of
`evaluate`) and open latents (`LatentIndex`, `latent_data`) to one process's numbers."""
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from topk_sae import distributed, parallel
from topk_sae import train as T
from topk_sae.distributed import Shard
from topk_sae.model import SAEConfig, TopKSAE

WORKER = Path(__file__).parent / "workers" / "tp_worker.py"
sys.path.insert(0, str(WORKER.parent))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TOL = 1e-5  # max abs difference from one process
EVAL_TOL = 1e-5  # max abs difference of any number of an evaluation from one process's


def torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), str(WORKER),
            *args]


@pytest.fixture(scope="module")
def one() -> dict:
    "The one-process run of tests/workers/train_worker.py: raw weights, and the EMA's under 'ema.'."
    import train_worker
    torch.set_num_threads(1)
    return train_worker.run(out="", steps=24)


def max_diff(out: Path, one: dict) -> dict[str, float]:
    raw, ema = load_file(out / "raw" / "sae.safetensors"), load_file(out / "ema" / "sae.safetensors")
    assert set(raw) == {k for k in one if not k.startswith("ema.")} == set(ema)
    return {**{k: (raw[k] - one[k]).abs().max().item() for k in raw},
            **{f"ema.{k}": (ema[k] - one[f"ema.{k}"]).abs().max().item() for k in ema}}


@pytest.mark.slow
@pytest.mark.parametrize("nproc,tp,path", [(2, 2, "cpu"), (4, 4, "cpu"), (4, 2, "cpu"), (2, 2, "cuda-path"),
                                           (2, 2, "tiles")])
def test_sharded_training_matches_one_process(tmp_path, one, nproc, tp, path, monkeypatch):
    "The three layouts; the CUDA op sequence (fixed-width AuxK, no host decisions) on the CPU; pre-activation tiles."
    env = {**ENV, "TOPK_SAE_KERNELS": "cpu" if path == "tiles" else path}
    if path == "tiles": env["TRAIN_WORKER_CFG"] = json.dumps({"encoder_chunk": 16})  # 3 tiles of each shard's 48
    r = subprocess.run(torchrun(nproc, str(tmp_path), "--tp", str(tp)), env=env, capture_output=True, text=True,
                       timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    if path == "cuda-path":
        import train_worker
        monkeypatch.setenv("TOPK_SAE_KERNELS", path)
        one = train_worker.run(out="", steps=24)
    diffs = max_diff(tmp_path, one)
    assert max(diffs.values()) <= TOL, diffs
    import train_worker
    with torch.no_grad(): whole = TopKSAE.load(tmp_path / "ema")(train_worker.data()[:64])
    for x_hat in load_file(tmp_path / "forward.safetensors").values():  # sae(x) and decode(encode(x)), sharded
        assert (x_hat - whole).abs().max() <= TOL * whole.abs().max()
    # one ordinary SAE, readable anywhere, the same config as the one-process save
    saved = json.loads((tmp_path / "ema" / "cfg.json").read_text())
    assert saved == {"format": TopKSAE.FORMAT, **SAEConfig.tiny(n_latents=96).to_dict()}
    assert TopKSAE.load(tmp_path / "ema").W_enc.shape == (16, 96)
    # the run really trained, with AuxK on dead latents: the weights moved far more than the tolerance
    assert (one["W_dec"] - torch.nn.functional.normalize(one["W_enc"].t(), dim=1)).abs().max() > 1e-2


def _tokens(ckpt: Path) -> int:
    "Tokens of the checkpoint in `ckpt` (0: none yet, or one being swapped in while we look)."
    try:
        found = T.find_checkpoint(ckpt)
        return json.loads((found / "manifest.json").read_text())["tokens"] if found else 0
    except (OSError, ValueError): return 0


@pytest.mark.slow
def test_sigkill_then_resume_matches_one_process(tmp_path, one):
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    cmd = torchrun(2, str(out), "--tp", "2", "--ckpt", str(ckpt))
    proc = subprocess.Popen(cmd + ["--slow", "0.2"], env=ENV, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while _tokens(ckpt) < 6 * 256 and time.time() < deadline and proc.poll() is None: time.sleep(0.05)
    try:  # kill rank 0 (the checkpoint writer, its pid in the folder's lock) as a crash; torchrun ends the other
        os.kill(json.loads((tmp_path / "ckpt.lock").read_text())["pid"], signal.SIGKILL)
        proc.wait(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError): os.killpg(proc.pid, signal.SIGKILL)  # whatever is left
    killed_at = _tokens(ckpt) // 256
    assert 6 <= killed_at < 24, f"killed at step {killed_at}, rc {proc.returncode}"
    assert not (out / "raw").exists()
    manifest = json.loads((T.find_checkpoint(ckpt) / "manifest.json").read_text())
    assert (manifest["tensor_parallel"], manifest["shards"]) == (2, ["shard-0-of-2", "shard-1-of-2"])
    T.checkpoint_sae(ckpt)  # the checkpoint survived the kill whole
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    diffs = max_diff(out, one)
    assert max(diffs.values()) <= TOL, diffs
    assert _tokens(ckpt) == 24 * 256
    final, saved = T.checkpoint_sae(ckpt).state_dict(), load_file(out / "ema" / "sae.safetensors")
    assert max((final[k] - saved[k]).abs().max().item() for k in saved) <= 1e-6  # its shards, joined: the EMA SAE
    # the same checkpoint under another layout: refused by name, before any step
    cfg = T.TrainConfig.tiny(n_tokens=24 * 256, dead_tokens=512, multi_topk=True, checkpoint_dir=str(ckpt),
                             checkpoint_every=512, resume=True, tensor_parallel=4)
    four = parallel.ShardedTopKSAE(SAEConfig.tiny(n_latents=96), Shard(rank=0, size=4, n_local=24))
    state = T.TrainState.start(four, cfg, torch.randn(256, 16))
    with pytest.raises(ValueError, match="is sharded, tensor_parallel=2 but this run is sharded, tensor_parallel=4"):
        T.load_checkpoint(ckpt, state)


def test_bad_layouts_are_refused_before_any_work(monkeypatch):
    acts, cfg = torch.randn(1024, 16), T.TrainConfig.tiny(tensor_parallel=4)
    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    with pytest.raises(ValueError, match="n_latents=90 is not divisible by tensor_parallel=4"):
        T.train(TopKSAE(SAEConfig.tiny(n_latents=90)), acts, cfg)
    monkeypatch.setattr(distributed, "world_size", lambda: 6)
    with pytest.raises(ValueError, match="a multiple of it, but this run has 6"):
        T.train(TopKSAE(SAEConfig.tiny()), acts, cfg)
    with pytest.raises(ValueError, match="tensor_parallel=0 must be positive"):
        T.TrainConfig.tiny(tensor_parallel=0)
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: False)
    with pytest.raises(RuntimeError, match="pass backend='gloo'"):
        distributed.init_distributed("nccl")


def test_shards_draw_the_whole_init_across_block_boundaries():
    cfg = SAEConfig(d_model=16, n_latents=500_000, k=4)  # unit_rows draws 262,144 rows of 16 per block
    whole = TopKSAE(cfg)
    part = parallel.ShardedTopKSAE(cfg, Shard(rank=2, size=5, n_local=100_000))  # rows 200,000..299,999
    assert torch.equal(part.W_dec, whole.W_dec[200_000:300_000])
    assert torch.equal(part.W_enc, whole.W_enc[:, 200_000:300_000])


def test_a_saved_sae_scatters_into_shards(tmp_path):
    whole = TopKSAE(SAEConfig.tiny(n_latents=96), seed=3)
    whole.save(tmp_path)
    parts = [parallel.load_shard(tmp_path, Shard(rank=r, size=3, n_local=32)) for r in range(3)]
    assert torch.equal(torch.cat([p.W_dec for p in parts]), whole.W_dec)
    assert torch.equal(torch.cat([p.W_enc for p in parts], 1), whole.W_enc)
    assert all(torch.equal(p.b_dec, whole.b_dec) for p in parts)
    with pytest.raises(ValueError, match="the shard covers 64 latents but the config has 96"):
        parallel.load_shard(tmp_path, Shard(rank=0, size=2, n_local=32))


def _diffs(a, b, where: str = "") -> dict[str, float]:
    "Max |a - b| over the numbers of two JSON values of one shape, by path (NaN matches NaN); anything else equal."
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        return {k: v for key in a for k, v in _diffs(a[key], b[key], f"{where}.{key}".strip(".")).items()}
    if isinstance(a, list):
        assert len(a) == len(b), where
        out: dict[str, float] = {}
        for x, y in zip(a, b):
            for k, v in _diffs(x, y, where).items(): out[k] = max(out.get(k, 0.0), v)
        return out
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        assert isinstance(b, (int, float)), (where, a, b)
        return {where: 0.0 if math.isnan(a) and math.isnan(b) else abs(a - b)}
    assert a == b, (where, a, b)
    return {}


@pytest.mark.slow
def test_evaluating_a_sharded_sae_matches_the_whole_one(tmp_path, tiny_sae):
    "Every part of `evaluate` and the latent inspector's data, on 2 gloo shards, equal one process's."
    import tp_worker

    from topk_sae.evaluate import EvalConfig, evaluate
    out, held = tmp_path / "out", tiny_sae.contexts[300:360]
    out.mkdir()
    tiny_sae.sae.save(tmp_path / "sae")
    save_file({"tokens": held.contiguous()}, out / "tokens.safetensors")
    r = subprocess.run(torchrun(2, str(out), "--tp", "2", "--eval", str(tmp_path / "sae")), env=ENV,
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    sharded = json.loads((out / "eval.json").read_text())
    report = evaluate(tiny_sae.model, tiny_sae.sae, tp_worker.EVAL_HOOK, held, EvalConfig.tiny())
    whole = {"report": json.loads(json.dumps(report.to_json())), "density": report.activations.density.tolist(),
             "latents": json.loads(json.dumps(tp_worker.inspect(tiny_sae.sae, tiny_sae.model, held)))}
    for got in (sharded, whole): got["report"].pop("seconds")
    diffs = _diffs(sharded, whole)
    print(json.dumps(diffs, indent=1))  # the equality figures (pytest -s shows them)
    assert set(report.to_json()["values"]) <= {k.removeprefix("report.values.") for k in diffs}
    d = report.downstream  # a loss-recovered fraction divides a CE difference by a CE gap (0.003 nats to zero ablation)
    gaps = {"ce_recovered": d.ce_zero - d.ce_clean, "ce_recovered_vs_mean": d.ce_mean - d.ce_clean}
    tol = {k: EVAL_TOL / min(1.0, abs(gaps.get(k.split(".")[-1], 1.0))) for k in diffs}
    assert all(x <= tol[k] for k, x in diffs.items()), {k: (x, tol[k]) for k, x in diffs.items() if x > tol[k]}
