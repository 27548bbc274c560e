"""`train_many`: several SAEs from one stream end where each ends alone, resume after a crash (each from its own
checkpoint, however far apart they are), and stop at their own token budgets."""
import pytest
import torch

from topk_sae.activations import TensorSource
from topk_sae.many import SAESpec, train_many
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.relu import ReLUSAE, ReLUSAEConfig
from topk_sae.train import TrainConfig, train

class Crashing(TensorSource):
    "A source whose stream fails after `after` batches (a crash mid-run)."
    def __init__(self, acts, after):
        super().__init__(acts)
        self.after = after

    def batches(self, batch_tokens, seed=0, start=0):
        for i, b in enumerate(super().batches(batch_tokens, seed, start)):
            if start + i == self.after: raise RuntimeError("crashed")
            yield b


def _saes():
    return [TopKSAE(SAEConfig(d_model=16, n_latents=64, k=4)),
            TopKSAE(SAEConfig(d_model=16, n_latents=128, k=8), seed=1),
            ReLUSAE(ReLUSAEConfig(d_model=16, n_latents=64, l1_coef=0.1))]


def _cfgs(tmp_path, resume):
    base = {"n_tokens": 1280, "batch_tokens": 128, "init_tokens": 256, "resume": resume}
    return [TrainConfig.tiny(**base, checkpoint_every=256, checkpoint_dir=str(tmp_path / "a")),
            TrainConfig.tiny(**base, checkpoint_every=512, checkpoint_dir=str(tmp_path / "b")),
            TrainConfig.tiny(**{**base, "n_tokens": 640, "resume": False})]  # stops at step 5, the others go on


def test_several_saes_from_one_stream_end_as_alone_and_resume_from_their_own_checkpoints(tmp_path):
    acts = torch.randn(4096, 16, generator=torch.Generator().manual_seed(0))
    alone = [train(sae, acts, cfg) for sae, cfg in zip(_saes(), _cfgs(tmp_path / "alone", False))]
    with pytest.raises(RuntimeError, match="crashed"):  # at batch 7: "a" saved step 6, "b" step 4, the third none
        train_many(Crashing(acts, after=7), [SAESpec("x", s, c) for s, c in zip(_saes(), _cfgs(tmp_path, True))])
    resumed = train_many(acts, [SAESpec("x", s, c) for s, c in zip(_saes(), _cfgs(tmp_path, True))])
    for r, a in zip(resumed, alone):
        for name, w in a.sae.state_dict().items(): torch.testing.assert_close(r.sae.state_dict()[name], w)
        assert r.history.step.tolist() == a.history.step.tolist()
    assert [int(r.history.tokens.iloc[-1]) for r in resumed] == [1280, 1280, 640]


def test_specs_that_cannot_share_a_stream_are_refused_before_any_work():
    acts = torch.randn(512, 16)
    sae = TopKSAE(SAEConfig(d_model=16, n_latents=64, k=4))
    with pytest.raises(ValueError, match="at least one SAESpec"): train_many(acts, [], cfg=TrainConfig.tiny())
    with pytest.raises(ValueError, match="give train_many a cfg"): train_many(acts, [SAESpec("x", sae)])
    with pytest.raises(ValueError, match="same batch_tokens and seed"):
        train_many(acts, [SAESpec("x", sae, TrainConfig.tiny(seed=1)), SAESpec("x", sae, TrainConfig.tiny())])
    with pytest.raises(ValueError, match="the source holds 'a'"):
        train_many(TensorSource(acts, hook="a"), [SAESpec("b", sae)], cfg=TrainConfig.tiny())
