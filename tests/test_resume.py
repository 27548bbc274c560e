"""Resume after SIGKILL: a training process killed mid-run continues from its checkpoint and ends
with the same weights as a run that was never interrupted; no checkpoint is lost on the way."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from topk_sae.model import TopKSAE
from topk_sae.train import find_checkpoint

WORKER = Path(__file__).parent / "workers" / "train_worker.py"
sys.path.insert(0, str(WORKER.parent))


def _step(ckpt: Path) -> int:
    "The step of the checkpoint in `ckpt` (0 if none), read while a live run may be swapping its folders."
    for _ in range(100):
        if (found := find_checkpoint(ckpt)) is None: return 0
        try: return torch.load(found / "trainer.pt", weights_only=True)["step"]
        except FileNotFoundError: time.sleep(0.01)  # the run swapped checkpoints between find and read
    raise AssertionError(f"no readable checkpoint in {ckpt} after 100 tries")


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    import train_worker
    torch.set_num_threads(1)
    steps, ckpt = 40, tmp_path / "ckpt"
    whole = train_worker.run(out="", steps=steps, ckpt=str(tmp_path / "whole"))
    cmd = [sys.executable, str(WORKER), str(tmp_path / "final.safetensors"), "--steps", str(steps), "--ckpt", str(ckpt)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd + ["--slow", "0.1"], env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while _step(ckpt) < 6 and time.time() < deadline and proc.poll() is None: time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _step(ckpt)
    assert proc.returncode == -signal.SIGKILL and 6 <= killed_at < steps, f"killed at {killed_at}, rc {proc.returncode}"
    assert not (tmp_path / "final.safetensors").exists()
    TopKSAE.load(find_checkpoint(ckpt))  # the checkpoint survived the kill whole
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    final = load_file(tmp_path / "final.safetensors")
    for k in whole:
        torch.testing.assert_close(final[k], whole[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
    assert _step(ckpt) == steps


def test_a_checkpoint_from_another_config_is_refused(tmp_path):
    from topk_sae.model import SAEConfig
    from topk_sae.train import TrainConfig, train
    acts = torch.randn(4096, 16)
    cfg = TrainConfig.tiny(n_tokens=1024, checkpoint_every=512, checkpoint_dir=str(tmp_path / "c"), resume=True,
                           adam_betas=(0.9, 0.999))
    train(TopKSAE(SAEConfig.tiny()), acts, cfg)
    with pytest.raises(ValueError, match="n_latents=64 there, 32 here"):
        train(TopKSAE(SAEConfig.tiny(n_latents=32)), acts, cfg)
    with pytest.raises(ValueError, match="aux_coef=None there, 0.5 here"):
        other = TrainConfig.tiny(**{**cfg.to_dict(), "aux_coef": 0.5, "adam_betas": (0.9, 0.999)})
        train(TopKSAE(SAEConfig.tiny()), acts, other)
