"""Data-parallel training: 2 CPU processes under torchrun (gloo) take the same steps as one process
on the same global batches."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).parent / "workers" / "train_worker.py"
sys.path.insert(0, str(WORKER.parent))


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    import train_worker
    torch.set_num_threads(1)
    one = train_worker.run(out="", steps=24)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           str(tmp_path / "two.safetensors"), "--steps", "24"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    two = load_file(tmp_path / "two.safetensors")
    assert set(two) == set(one)
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    # the run really trained, with AuxK on dead latents: the weights moved far more than the tolerance
    assert (one["W_dec"] - torch.nn.functional.normalize(one["W_enc"].t(), dim=1)).abs().max() > 1e-2


def test_batch_must_split_evenly_across_processes(monkeypatch):
    from topk_sae import distributed
    from topk_sae import train as T
    from topk_sae.model import SAEConfig, TopKSAE
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    with pytest.raises(ValueError, match="divisible by the 3 processes"):
        T.train(TopKSAE(SAEConfig.tiny()), torch.randn(1024, 16), T.TrainConfig.tiny())
