"""Checkpoints: SAE save/load round trips in every mode, training checkpoints that equal the result,
and atomic writes that never lose the previous checkpoint."""
import os

import pandas as pd
import pytest
import torch

from topk_sae.model import NORMALIZE_MODES, SAEConfig, TopKSAE
from topk_sae.train import TrainConfig, train

def _toy(n=3000, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(64, d, generator=g), dim=1)
    codes = torch.rand(n, 64, generator=g) * (torch.rand(n, 64, generator=g) < 0.05)
    return codes @ dirs * 10 + 3


@pytest.mark.parametrize("mode", NORMALIZE_MODES)
def test_sae_round_trip(tmp_path, mode):
    acts = _toy()
    res = train(TopKSAE(SAEConfig.tiny(normalize=mode, hook="blocks.1.hook_resid_post", model_name="tiny")), acts,
                TrainConfig.tiny(n_tokens=2048))
    res.sae.save(tmp_path)
    back = TopKSAE.load(tmp_path)
    assert back.cfg == res.sae.cfg
    for name, tensor in res.sae.state_dict().items(): assert torch.equal(back.state_dict()[name], tensor), name
    with torch.no_grad(): assert torch.equal(back(acts[:50]), res.sae(acts[:50]))


def test_training_checkpoint_holds_the_final_state(tmp_path):
    acts = _toy()
    cfg = TrainConfig.tiny(n_tokens=4096, checkpoint_every=1024, checkpoint_dir=str(tmp_path / "ckpt"))
    res = train(TopKSAE(SAEConfig.tiny()), acts, cfg)
    ckpt = tmp_path / "ckpt"
    with torch.no_grad(): assert torch.equal(TopKSAE.load(ckpt)(acts[:20]), res.sae(acts[:20]))
    state = torch.load(ckpt / "trainer.pt", weights_only=True)
    assert state["tokens"] == 4096 and state["ema_t"] == cfg.steps
    assert len(pd.read_csv(ckpt / "history.csv")) == len(res.history)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary folders left behind


def test_a_crash_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    acts = _toy()
    cfg = TrainConfig.tiny(n_tokens=1024, checkpoint_every=1024, checkpoint_dir=str(tmp_path / "ckpt"))
    res = train(TopKSAE(SAEConfig.tiny()), acts, cfg)
    before = TopKSAE.load(tmp_path / "ckpt").state_dict()

    def disk_full(*args, **kwargs): raise OSError("No space left on device")
    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    with pytest.raises(OSError, match="No space left"):
        train(TopKSAE(SAEConfig.tiny(), seed=1), acts, cfg)
    after = TopKSAE.load(tmp_path / "ckpt").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    assert res.raw is not None


def test_damaged_weights_in_a_checkpoint_are_named(tmp_path):
    acts = torch.randn(2048, 16)
    cfg = TrainConfig.tiny(n_tokens=1024, checkpoint_every=512, checkpoint_dir=str(tmp_path / "c"), resume=True)
    train(TopKSAE(SAEConfig.tiny()), acts, cfg)
    raw = tmp_path / "c" / "raw.safetensors"
    raw.write_bytes(os.urandom(raw.stat().st_size))
    with pytest.raises(ValueError, match=r"\[.raw.safetensors.\] in .* do not match the checksums"):
        train(TopKSAE(SAEConfig.tiny()), acts, cfg)


def test_a_checkpoint_missing_a_file_is_refused(tmp_path):
    acts = torch.randn(2048, 16)
    cfg = TrainConfig.tiny(n_tokens=1024, checkpoint_every=512, checkpoint_dir=str(tmp_path / "c"), resume=True)
    train(TopKSAE(SAEConfig.tiny()), acts, cfg)
    (tmp_path / "c" / "ema.safetensors").unlink()
    with pytest.raises(ValueError, match=r"incomplete: \['ema.safetensors'\] missing"):
        train(TopKSAE(SAEConfig.tiny()), acts, cfg)
