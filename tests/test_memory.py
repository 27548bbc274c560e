"""`topk_sae.memory.plan` against what a training step really allocates: torch's `MemTracker` around two whole steps
on the `meta` device (shapes only, so paper-sized SAEs cost nothing). Adam's moments are created as the fused CUDA
kernel keeps them (the unfused step that `meta` runs would add temporaries a GPU run does not have); the forward
pass is fp32, since `meta` has no autocast."""
import pytest
import torch
from torch.distributed._tools.mem_tracker import MemTracker

from topk_sae.distributed import Shard
from topk_sae.memory import plan
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.parallel import ShardedTopKSAE
from topk_sae.train import EMA, DeadLatents, TrainConfig, TrainState, make_optimizer, resolve

def tracked_peak(d: int, n: int, k: int, batch: int, tensor_parallel: int = 1, **cfg_kw) -> int:
    "Peak bytes of two steps; with `tensor_parallel`, of the last shard's process (one process: no collectives)."
    tracker = MemTracker()
    with tracker:
        sae = TopKSAE(SAEConfig(d_model=d, n_latents=n, k=k), device="meta")
        if tensor_parallel > 1:
            shard = Shard(rank=tensor_parallel - 1, size=tensor_parallel, n_local=n // tensor_parallel)
            sae = ShardedTopKSAE(sae.cfg, shard, device="meta")
        cfg = TrainConfig(n_tokens=batch * 100, batch_tokens=batch, progress=False, dead_tokens=batch, **cfg_kw)
        recipe = resolve(cfg, sae)
        opt = make_optimizer(sae, recipe)

        def fused_like_step(closure=None):  # the moments, allocated once, and no temporaries
            for group in opt.param_groups:
                for p in group["params"]:
                    if not opt.state[p]:
                        opt.state[p] = {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        opt.step = fused_like_step
        dead = DeadLatents(len(sae.W_dec), sae.device, n - len(sae.W_dec))
        state = TrainState(sae, cfg, recipe, opt, EMA(sae, recipe.ema_decay), dead, var0=1.0)
        state.dead.since.fill_(10**6)
        x = torch.empty(batch, d, device="meta")
        for _ in range(2): state.step(x)
    return tracker.get_tracker_snapshot("peak")[torch.device("meta")]["Total"]


@pytest.mark.parametrize("d,n,k,batch,multi", [(768, 2**16, 32, 4096, False), (768, 2**18, 32, 4096, True),
                                              (4096, 2**16, 32, 4096, False), (768, 2**16, 32, 8192, False),
                                              (256, 2**14, 16, 2048, True)])
def test_the_plan_is_within_ten_percent_of_the_tracked_peak(d, n, k, batch, multi):
    tracked, planned = tracked_peak(d, n, k, batch, multi_topk=multi), plan(d, n, k, batch, precision="fp32").peak
    assert abs(planned - tracked) <= 0.1 * tracked, f"plan {planned / 2**30:.3f} GiB, tracked {tracked / 2**30:.3f} GiB"


def test_the_per_latent_budget_at_gpt2_width():
    "GPT-2 small's width, bf16, a 4096-token batch: at most 45 KB per latent, checkpoint included."
    assert plan(768, 2**17, 32, 4096, precision="bf16").per_latent <= 45_000


@pytest.mark.parametrize("d,n,tp", [(768, 2**18, 4), (4096, 2**17, 2)])
def test_the_plan_of_a_shard_is_within_ten_percent_of_the_tracked_peak(d, n, tp):
    tracked = tracked_peak(d, n, 32, 4096, tensor_parallel=tp, multi_topk=True)
    planned = plan(d, n, 32, 4096, precision="fp32", world_size=tp, tensor_parallel=tp).peak
    assert abs(planned - tracked) <= 0.1 * tracked, f"plan {planned / 2**30:.3f} GiB, tracked {tracked / 2**30:.3f} GiB"
