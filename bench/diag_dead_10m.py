"""Where the never-active latents of the 10M-token efficiency run come from: the bench protocol for the tuned defaults at
10M tokens, printing the dead counter during training and, at the end, the never-active share on held-out and on training
slices of growing size (run with .venv/bin/python; about 13 min on 2 idle cores, 30 on one thread)."""
import torch
torch.set_num_threads(1)
from data import bench_activations
from run import layer_norm
from peers import RUNNERS
train_acts, held = bench_activations()
held = layer_norm(held); data = layer_norm(train_acts)
d, n, k, B = 576, 4608, 32, 4096
tokens = 10_002_432
R = RUNNERS["topk_sae"]
r = R(d, n, k, tokens, B, data[torch.randperm(len(data), generator=torch.Generator().manual_seed(1))[:32768]])
g, seen, order, step = torch.Generator().manual_seed(0), 0, torch.empty(0, dtype=torch.long), 0
while seen < tokens:
    if len(order) < B: order = torch.cat([order, torch.randperm(len(data), generator=g)])
    r.step(data[order[:B]]); order, seen = order[B:], seen + B; step += 1
    if step % 244 == 0:
        dead = r.state.dead
        print(step, "train-dead(window)", dead.mask(r.state.recipe.dead_tokens).float().mean().item(),
              "since>100k", (dead.since > 100_000).float().mean().item(), flush=True)
sae = r.final()
def never(x):
    fired = torch.zeros(n, dtype=torch.bool)
    for c in x.split(8192):
        top = sae.encode_topk(c); fired[top.idx[top.acts > 0]] = True
    return 1 - fired.float().mean().item()
print("recipe", r.state.recipe)
print("never-active held-out 40k", never(held), "train first 40k", never(data[:40000]),
      "train 400k", never(data[:400000]), "train all 1.2M", never(data))
