"""The on-disk activation store: written while harvesting, read back shuffled in bounded memory, and
refused clearly when it is truncated, incomplete or from another hook."""
import json
from types import SimpleNamespace

import pytest
import torch

from topk_sae.activations import run_to_hooks
from topk_sae.core import folder_lock
from topk_sae.lm import load_model
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.store import ActivationStore, StoreWriter, harvest_to_store
from topk_sae.train import TrainConfig, train

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def model():
    return load_model("tiny")


@pytest.fixture()
def ctx():
    return torch.randint(0, 256, (48, 17), generator=torch.Generator().manual_seed(0))


def test_store_round_trips_and_shuffles_across_shards(model, ctx, tmp_path):
    store = harvest_to_store(model, HOOK, ctx, tmp_path / "s", batch_size=8, shard_tokens=100, progress=False)
    ref = run_to_hooks(model, ctx, [HOOK])[HOOK][:, 1:].reshape(-1, model.cfg.d_model)
    m = store.manifest
    assert (m.tokens, m.context_len, m.hook, m.d_model, m.complete) == (768, 17, HOOK, model.cfg.d_model, True)
    torch.testing.assert_close(torch.cat([store.shard(i) for i in range(len(m.shards))]), ref)
    torch.testing.assert_close(torch.tensor(m.mean), ref.double().mean(0).float(), rtol=1e-4, atol=1e-5)
    mean_sq_norm = ref.double().pow(2).sum(1).mean().float()
    torch.testing.assert_close(torch.tensor(m.mean_sq_norm), mean_sq_norm, rtol=1e-4, atol=1e-5)
    # one pass of 12 batches of 64 = every token exactly once; a batch mixes shards
    batches = [b for _, b in zip(range(12), ActivationStore(store.folder, window=2).batches(64, seed=3))]
    got = torch.cat(batches)
    assert torch.equal(got[torch.argsort(got[:, 0])], ref[torch.argsort(ref[:, 0])])
    row_shard = {tuple(r.tolist()): i // 100 for i, r in enumerate(ref)}
    assert len({row_shard[tuple(r.tolist())] for r in batches[0]}) >= 2
    # resume position: batch 5 of the stream, whether reached or skipped to
    fifth = list(zip(range(6), store.batches(64, seed=3)))[5][1]
    torch.testing.assert_close(next(store.batches(64, seed=3, start=5)), fifth)
    assert store.sample(50, seed=1).shape == (50, model.cfg.d_model)


def test_train_reads_a_store(model, ctx, tmp_path):
    store = harvest_to_store(model, HOOK, ctx, tmp_path / "s", shard_tokens=128, progress=False)
    sae = TopKSAE(SAEConfig(d_model=model.cfg.d_model, n_latents=128, k=4, hook=HOOK))
    res = train(sae, store, TrainConfig.tiny(n_tokens=1024, batch_tokens=128, init_tokens=256))
    assert res.history.fvu.iloc[-1] < 1.0
    other = TopKSAE(SAEConfig(d_model=model.cfg.d_model, n_latents=128, k=4, hook="blocks.0.hook_resid_post"))
    made_for_another_hook = "holds 'blocks.1.hook_resid_post' but the SAE was made for 'blocks.0.hook_resid_post'"
    with pytest.raises(ValueError, match=made_for_another_hook):
        train(other, store, TrainConfig.tiny(n_tokens=256, batch_tokens=128))
    with pytest.raises(ValueError, match="d_model=.* but the SAE reads d_model=8"):
        store.check(TopKSAE(SAEConfig.tiny(d_model=8)))
    with pytest.raises(ValueError, match="comes from model"):
        store.check(model=SimpleNamespace(topk_sae_name="gpt2", cfg=SimpleNamespace(d_model=model.cfg.d_model)))


def test_missing_and_incomplete_stores_are_refused(model, ctx, tmp_path):
    "(A truncated shard is refused in the lesson cells of 04a_store.)"
    store = harvest_to_store(model, HOOK, ctx, tmp_path / "s", shard_tokens=200, progress=False)
    (store.folder / "shard_00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="listed in the manifest is missing"):
        ActivationStore(store.folder)
    with pytest.raises(FileNotFoundError, match="not an activation store"):
        ActivationStore(tmp_path)
    # harvesting that dies part way: the whole shards stay listed, the store is marked incomplete
    writer = StoreWriter(tmp_path / "p", model="tiny", hook=HOOK, context_len=17, d_model=model.cfg.d_model,
                         shard_tokens=100)
    with pytest.raises(RuntimeError, match="boom"), writer as w:
        w.add(torch.randn(250, model.cfg.d_model))
        raise RuntimeError("boom")
    with pytest.raises(ValueError, match="incomplete"):
        ActivationStore(tmp_path / "p")
    partial = ActivationStore(tmp_path / "p", allow_incomplete=True)
    assert len(partial) == 200 and len(partial.manifest.shards) == 2
    with pytest.raises(ValueError, match="NaN"):
        writer = StoreWriter(tmp_path / "n", model="tiny", hook=HOOK, context_len=17, d_model=4)
        writer.add(torch.full((3, 4), float("nan")))


@pytest.mark.parametrize("entry", ["../outside.safetensors", "/etc/passwd", "link/shard.safetensors"])
def test_manifest_entries_must_stay_inside_the_store(model, ctx, tmp_path, entry):
    "`..`, an absolute path or a symlink out of the folder: refused by name before anything is read."
    folder = harvest_to_store(model, "blocks.0.hook_resid_post", ctx[:8], tmp_path / "s", shard_tokens=64,
                              progress=False).folder
    (tmp_path / "elsewhere").mkdir()
    (folder / "link").symlink_to(tmp_path / "elsewhere")
    m = json.loads((folder / "manifest.json").read_text())
    m["shards"][0]["file"] = entry
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="outside the store"): ActivationStore(folder)


def test_a_manifest_whose_token_count_disagrees_with_its_shards_is_refused(model, ctx, tmp_path):
    folder = harvest_to_store(model, "blocks.0.hook_resid_post", ctx[:8], tmp_path / "s", shard_tokens=64,
                              progress=False).folder
    m = json.loads((folder / "manifest.json").read_text())
    m["tokens"] += 5
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="its shards hold"): ActivationStore(folder)


def test_a_shard_changed_after_harvesting_is_named(model, ctx, tmp_path):
    "Same size, other bytes: the size check passes, the checksum does not (once per shard, when it is first read)."
    store = harvest_to_store(model, "blocks.0.hook_resid_post", ctx[:8], tmp_path / "s", shard_tokens=64,
                             progress=False)
    f = store.folder / store.manifest.shards[0]["file"]
    raw = bytearray(f.read_bytes())
    raw[-8:] = bytes(8)  # the last activation's bytes: still a valid file of the same size
    f.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="does not match the checksum"): ActivationStore(store.folder).shard(0)


def test_a_store_folder_is_written_by_one_writer_and_holds_only_its_files(model, ctx, tmp_path):
    folder = tmp_path / "s"
    with folder_lock(folder), pytest.raises(RuntimeError, match="is in use by pid"):  # another harvest writes there
        harvest_to_store(model, "blocks.0.hook_resid_post", ctx[:8], folder, progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="holds files no store writes"):
        harvest_to_store(model, "blocks.0.hook_resid_post", ctx[:8], tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_stopped_store_keeps_the_statistics_of_its_shards_and_resumes_checked(model, ctx, tmp_path):
    "The manifest of a store that stopped describes the written tokens only; resuming checks every whole shard."
    rows = torch.randn(250, model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    with pytest.raises(RuntimeError, match="boom"), StoreWriter(tmp_path / "p", model="tiny", hook=HOOK,
                                                                 context_len=17, d_model=model.cfg.d_model,
                                                                 shard_tokens=100) as w:
        w.add(rows)
        raise RuntimeError("boom")
    stats = ActivationStore(tmp_path / "p", allow_incomplete=True).stats()
    torch.testing.assert_close(stats["mean"], rows[:200].double().mean(0).float())  # the 50 unwritten rows left out

    store, batches = tmp_path / "h", []
    def kill_third_batch(act, hook):
        batches.append(len(act))
        if len(batches) == 3: raise RuntimeError("killed")
    model.add_hook(HOOK, kill_third_batch)
    try:
        with pytest.raises(RuntimeError, match="killed"):  # stopped after two batches of 8 contexts (256 tokens)
            harvest_to_store(model, HOOK, ctx, store, batch_size=8, shard_tokens=100, progress=False)
    finally: model.reset_hooks()
    assert ActivationStore(store, allow_incomplete=True).manifest.tokens == 200
    with pytest.raises(FileExistsError, match="resume=True"):
        harvest_to_store(model, HOOK, ctx, store, progress=False)
    (store / "shard_00000.safetensors").write_bytes(b"x" * (store / "shard_00000.safetensors").stat().st_size)
    with pytest.raises(ValueError, match="shard_00000.safetensors does not match its checksum"):
        harvest_to_store(model, HOOK, ctx, store, resume=True, progress=False)
