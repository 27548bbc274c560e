"""The peers, driven one training step at a time on the same tensors as topk_sae (run in .venv-bench).

- SAELens 6.54: its own `SAETrainer` around `TopKTrainingSAE` with its defaults (Adam, lr 3e-4, AuxK on
  latents dead for 1000 steps, grad-norm clipping at 1); each step is the trainer's `_train_step`.
- EleutherAI sparsify 1.3: `SparseCoder` with its trainer's defaults (SignSGD under schedule-free with
  momentum 0.95, lr 5e-3 / sqrt(n / 2^14), b_dec set to the first batch's mean, unit-norm decoder and
  gradient projection each step, AuxK off). sparsify's `Trainer` needs a Hugging Face model and dataset,
  so its per-step logic is replicated here around the library's own modules.
- topk_sae: `TrainState.step` with the given `TrainConfig`.

Every runner takes (tok, d_model) batches of already-normalized activations (the peers have no per-token
LayerNorm of their own that works with TopK AuxK), and `encode_decode(x)` returns the reconstruction.
"""
import math

import torch


class TopKSAERunner:
    name = "topk_sae"

    def __init__(self, d: int, n: int, k: int, total_tokens: int, batch: int, sample: torch.Tensor, device: str = "cpu",
                 **train_kw):
        from topk_sae.model import SAEConfig, TopKSAE
        from topk_sae.train import TrainConfig, TrainState
        sae = TopKSAE(SAEConfig(d_model=d, n_latents=n, k=k, normalize="none")).to(device)
        cfg = TrainConfig(n_tokens=total_tokens, batch_tokens=batch, progress=False, **train_kw)
        self.state = TrainState.start(sae, cfg, sample.to(device))
        self.sae = sae

    def step(self, x: torch.Tensor) -> None:
        self.state.step(x)

    @torch.no_grad()
    def final(self):
        return self.state.averaged()

    @staticmethod
    @torch.no_grad()
    def encode_decode(sae, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        top = sae.encode_topk(x)
        return sae.decode_sparse(top), top.idx[top.acts > 0]


class SparsifyRunner:
    name = "sparsify"

    def __init__(self, d: int, n: int, k: int, total_tokens: int, batch: int, sample: torch.Tensor, device: str = "cpu"):
        from schedulefree import ScheduleFreeWrapper
        from sparsify import SparseCoder, SparseCoderConfig
        from sparsify.sign_sgd import SignSGD
        self.sae = SparseCoder(d, SparseCoderConfig(num_latents=n, k=k), device=device, dtype=torch.float32)
        lr = 5e-3 / math.sqrt(n / 2**14)
        self.opt = ScheduleFreeWrapper(SignSGD([dict(params=self.sae.parameters(), lr=lr)]), momentum=0.95)
        self.opt.train()
        self.steps = 0

    def step(self, x: torch.Tensor) -> None:
        if self.steps == 0: self.sae.b_dec.data = x.mean(0)
        self.sae.set_decoder_norm_to_unit_norm()
        self.sae(x).fvu.backward()
        self.sae.remove_gradient_parallel_to_decoder_directions()
        self.opt.step()
        self.opt.zero_grad()
        self.steps += 1

    def final(self):
        self.opt.eval()  # schedule-free: evaluate the averaged weights, as sparsify's Trainer.save does
        return self.sae

    @staticmethod
    @torch.no_grad()
    def encode_decode(sae, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        acts, idx, _ = sae.encode(x)
        return sae.decode(acts, idx), idx[acts > 0]


class SAELensRunner:
    name = "SAELens"

    def __init__(self, d: int, n: int, k: int, total_tokens: int, batch: int, sample: torch.Tensor, device: str = "cpu"):
        from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
        from sae_lens.training.sae_trainer import SAETrainer, SAETrainerConfig
        self.sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=n, k=k, dtype="float32", device=device))
        cfg = SAETrainerConfig(total_training_samples=total_tokens, train_batch_size_samples=batch, device=device, lr_end=3e-5,
                               autocast=device.startswith("cuda"))  # bf16 autocast on a GPU, as topk_sae and sparsify's trainer
        self.trainer = SAETrainer(cfg=cfg, sae=self.sae, data_provider=iter(()))

    def step(self, x: torch.Tensor) -> None:
        self.trainer._train_step(self.sae, x)
        self.trainer.n_training_steps += 1
        self.trainer.n_training_samples += len(x)

    def final(self):
        return self.sae

    @staticmethod
    @torch.no_grad()
    def encode_decode(sae, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = sae.encode(x)
        return sae.decode(z), z.nonzero()[:, 1]


RUNNERS = {r.name: r for r in (TopKSAERunner, SparsifyRunner, SAELensRunner)}
