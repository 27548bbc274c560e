"""Interop: OpenAI's released-SAE layout, SAELens' and sparsify's on-disk formats. Where the peer
library is installed (the benchmark's .venv-bench has both), our export is loaded with it and its
outputs compared with ours."""
import pytest
import torch

from topk_sae.interop import (
    load_openai_sae,
    load_saelens,
    load_sparsify,
    save_saelens,
    save_sparsify,
    to_openai_state_dict,
)
from topk_sae.model import SAEConfig, TopKSAE

def _sae(normalize: str, seed: int = 0) -> TopKSAE:
    cfg = SAEConfig(d_model=24, n_latents=96, k=6, normalize=normalize, hook="blocks.3.hook_resid_post",
                    model_name="gpt2")
    sae = TopKSAE(cfg, seed=seed)
    with torch.no_grad():
        sae.b_dec.normal_(generator=torch.Generator().manual_seed(seed)); sae.b_enc.uniform_(-0.2, 0.2)
        sae.W_enc.add_(0.1 * torch.randn_like(sae.W_enc)); sae.norm_scale.fill_(2.5)
    return sae


def _x(n: int = 64) -> torch.Tensor:
    return torch.randn(n, 24, generator=torch.Generator().manual_seed(5)) * 4 + 1


def test_openai_state_dict_round_trip_through_torch_load(tmp_path):
    sae = _sae("layernorm")
    torch.save(to_openai_state_dict(sae), tmp_path / "sae.pt")
    back = load_openai_sae(tmp_path / "sae.pt", hook="blocks.3.hook_resid_post")
    torch.testing.assert_close(back(_x()), sae(_x()))
    torch.testing.assert_close(back.encode(_x()), sae.encode(_x()))
    with pytest.raises(ValueError, match="OpenAI's TopK autoencoders always layer-normalize"):
        to_openai_state_dict(_sae("none"))
    state = to_openai_state_dict(sae)
    state["activation_state_dict"] = {}
    with pytest.raises(ValueError, match="no activation_state_dict\\['k'\\]"):
        load_openai_sae(state)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable state dict"):
        load_openai_sae(tmp_path / "bad.pt")


@pytest.mark.parametrize("normalize", ["none", "scalar", "layernorm"])
def test_saelens_round_trip(tmp_path, normalize):
    sae = _sae(normalize)
    back = load_saelens(save_saelens(sae, tmp_path / "sl"))
    torch.testing.assert_close(back(_x()), sae(_x()), rtol=1e-5, atol=1e-4)
    assert back.cfg.hook == "blocks.3.hook_resid_post"


@pytest.mark.parametrize("normalize", ["none", "scalar"])
def test_sparsify_round_trip(tmp_path, normalize):
    sae = _sae(normalize)
    back = load_sparsify(save_sparsify(sae, tmp_path / "sp"))
    torch.testing.assert_close(back(_x()), sae(_x()), rtol=1e-5, atol=1e-4)


def test_bad_folders_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="needs cfg.json and sae_weights.safetensors"):
        load_saelens(tmp_path)
    with pytest.raises(ValueError, match="unit-norm"):
        save_saelens(_sae("unit_norm"), tmp_path / "u")
    folder = save_sparsify(_sae("none"), tmp_path / "sp")
    f = folder / "sae.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_sparsify(folder)
    from safetensors.torch import load_file, save_file
    sl = save_saelens(_sae("none"), tmp_path / "sl")
    w = load_file(sl / "sae_weights.safetensors"); del w["b_enc"]; save_file(w, sl / "sae_weights.safetensors")
    with pytest.raises(ValueError, match="missing weights \\['b_enc'\\]"):
        load_saelens(sl)


def test_saelens_loads_our_export(tmp_path):
    sae_lens = pytest.importorskip("sae_lens")
    for normalize in ("none", "layernorm"):
        sae = _sae(normalize)
        theirs = sae_lens.SAE.load_from_disk(str(save_saelens(sae, tmp_path / normalize)), device="cpu")
        with torch.no_grad():
            torch.testing.assert_close(theirs.encode(_x()), sae.encode(_x()), rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(theirs(_x()), sae(_x()), rtol=1e-4, atol=1e-3)


def test_sparsify_loads_our_export(tmp_path):
    sparsify = pytest.importorskip("sparsify")
    sae = _sae("scalar")
    theirs = sparsify.SparseCoder.load_from_disk(save_sparsify(sae, tmp_path / "sp"), device="cpu")
    with torch.no_grad():
        out = theirs(_x())
        torch.testing.assert_close(out.sae_out, sae(_x()), rtol=1e-5, atol=1e-4)
