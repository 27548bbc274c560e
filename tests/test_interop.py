"""Interop: OpenAI's released-SAE layout, SAELens' and sparsify's on-disk formats, Gemma Scope's params.npz. Loaders
are checked against each family's own formula written out as its public code writes it; where the peer library is
installed (the benchmark's .venv-bench has both), our export is loaded with it and its outputs compared with ours."""
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from topk_sae.core import save_json
from topk_sae.interop import (
    jumprelu_from_weights,
    load_gemma_scope,
    load_openai_sae,
    load_saelens,
    load_sparsify,
    save_saelens,
    save_sparsify,
    to_openai_state_dict,
)
from topk_sae.jumprelu import JumpReLUSAE
from topk_sae.model import SAEConfig, TopKOut, TopKSAE
from topk_sae.relu import ReLUSAE, ReLUSAEConfig

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
    with pytest.raises(ValueError, match="activation_state_dict gives no k"):
        load_openai_sae(state)
    state["activation_state_dict"] = {"k": torch.tensor(32.5)}
    with pytest.raises(ValueError, match="k=32.5: k must be a whole number"):
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


@pytest.mark.parametrize(("k", "error"), [(None, "gives no k"), (32.5, "k=32.5: k must be a whole"),
                                          ("32", "k='32'"), (True, "k=True"), (0, "k=0")])
def test_a_k_that_is_missing_or_not_a_whole_number_is_named(tmp_path, k, error):
    "A SAELens cfg.json without k (or a k that is not a whole number) names the file; 32.0 is read as 32."
    import json
    sl = save_saelens(_sae("none"), tmp_path / "sl")
    cfg = json.loads((sl / "cfg.json").read_text())
    cfg.pop("k")
    if k is not None: cfg["k"] = k
    (sl / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=error) as e: load_saelens(sl)
    assert "cfg.json" in str(e.value)
    (sl / "cfg.json").write_text(json.dumps({**cfg, "k": 4.0}))
    assert load_saelens(sl).cfg.k == 4


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


def _jumprelu_weights(seed: int = 0, d: int = 24, n: int = 96) -> dict[str, torch.Tensor]:
    "Weights in Gemma Scope's / SAELens' layout, with decoder rows of norms 0.2 to 4 and one all-zero row."
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1) * torch.linspace(0.2, 4, n)[:, None]
    W_dec[5] = 0
    W_enc, b_enc = torch.randn(d, n, generator=g) / d**0.5, torch.randn(n, generator=g) * 0.2
    return {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": torch.randn(d, generator=g),
            "threshold": torch.rand(n, generator=g) * 0.8}


def _jumprelu_sae(normalize: str) -> JumpReLUSAE:
    "A JumpReLU SAE whose pre-activations on `_x()` lie more than 1e-5 from their thresholds (any mode)."
    w = _jumprelu_weights(4)
    sae = jumprelu_from_weights(w["W_enc"], w["W_dec"], w["b_enc"], w["b_dec"], w["threshold"], normalize,
                                hook="blocks.3.hook_resid_post")
    with torch.no_grad(): sae.norm_scale.fill_(2.5)
    return sae


def test_gemma_scope_computes_their_formula(tmp_path):
    w = _jumprelu_weights()
    w["threshold"][:3] = torch.tensor([0.0, -0.1, 0.0])  # a threshold <= 0 gates like the ReLU alone
    np.savez(tmp_path / "params.npz", **{k: v.numpy() for k, v in w.items()})
    sae = load_gemma_scope(tmp_path / "params.npz", hook="blocks.12.hook_resid_post", model_name="gemma-2-2b")
    x = _x(200) * 0.5
    # Gemma Scope's JumpReLU, as their code writes it
    pre = x @ w["W_enc"] + w["b_enc"]
    acts = torch.relu(pre) * (pre > w["threshold"])
    x_hat = acts @ w["W_dec"] + w["b_dec"]
    assert 0 < (acts > 0).float().mean() < 0.9
    with torch.no_grad():
        torch.testing.assert_close(sae(x), x_hat, rtol=1e-5, atol=1e-4)
        active = sae.encode(x) > 0
    assert torch.equal(active[:, [i for i in range(96) if i != 5]], (acts > 0)[:, [i for i in range(96) if i != 5]])
    norms = sae.W_dec.norm(dim=1)
    torch.testing.assert_close(norms[norms > 0], torch.ones(95))
    assert (sae.cfg.normalize, sae.cfg.hook, type(sae)) == ("none", "blocks.12.hook_resid_post", JumpReLUSAE)
    assert load_gemma_scope(tmp_path).cfg.d_model == 24  # the folder works too


def test_gemma_scope_bad_files_name_the_file_and_the_key(tmp_path):
    w = {k: v.numpy() for k, v in _jumprelu_weights().items()}
    def write(name, **arrays):
        np.savez(tmp_path / name, **arrays)
        return tmp_path / name
    with pytest.raises(ValueError, match=r"missing.npz lacks the arrays \['b_dec'\]"):
        load_gemma_scope(write("missing.npz", **{k: v for k, v in w.items() if k != "b_dec"}))
    with pytest.raises(ValueError, match=r"shape.npz: .*W_dec has shape \(24, 96\), expected \(96, 24\)"):
        load_gemma_scope(write("shape.npz", **{**w, "W_dec": w["W_dec"].T}))
    nan = w["b_enc"].copy()
    nan[3] = np.nan
    with pytest.raises(ValueError, match="nan.npz: b_enc holds 1 NaN or Inf values"):
        load_gemma_scope(write("nan.npz", **{**w, "b_enc": nan}))
    with pytest.raises(ValueError, match="text.npz: threshold holds <U"):
        load_gemma_scope(write("text.npz", **{**w, "threshold": np.array(["a"] * 96)}))
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="junk.npz is not a readable .npz file"):
        load_gemma_scope(tmp_path / "junk.npz")
    np.savez(tmp_path / "pickled.npz", **{**w, "threshold": np.array([{"a": 1}] * 96, dtype=object)})
    with pytest.raises(ValueError, match="pickled.npz is not a readable .npz file"):
        load_gemma_scope(tmp_path / "pickled.npz")
    with pytest.raises(FileNotFoundError, match="no Gemma Scope params.npz"):
        load_gemma_scope(tmp_path / "nowhere")


def test_saelens_jumprelu_folder_computes_their_formula(tmp_path):
    "A folder as SAELens writes one (layer_norm, apply_b_dec_to_input False), against SAELens' formula written out."
    w = _jumprelu_weights(2)
    save_file(w, tmp_path / "sae_weights.safetensors")
    save_json({"architecture": "jumprelu", "d_in": 24, "d_sae": 96, "dtype": "float32", "apply_b_dec_to_input": False,
               "normalize_activations": "layer_norm", "metadata": {"hook_name": "blocks.3.hook_resid_post"}},
              tmp_path / "cfg.json")
    sae = load_saelens(tmp_path)
    x = _x()
    mu = x.mean(-1, keepdim=True)
    std = (x - mu).std(-1, keepdim=True)
    sae_in = (x - mu) / (std + 1e-5)  # SAELens' layer_norm, then no b_dec subtracted
    hidden_pre = sae_in @ w["W_enc"] + w["b_enc"]
    feature_acts = torch.relu(hidden_pre) * (hidden_pre > w["threshold"])
    out = (feature_acts @ w["W_dec"] + w["b_dec"]) * std + mu
    with torch.no_grad(): torch.testing.assert_close(sae(x), out, rtol=1e-5, atol=1e-4)
    assert (type(sae), sae.cfg.normalize, sae.cfg.hook) == (JumpReLUSAE, "layernorm", "blocks.3.hook_resid_post")
    state = dict(w)
    state["log_threshold"] = state.pop("threshold").clamp_min(1e-6).log()  # SAELens' older JumpReLU checkpoints
    save_file(state, tmp_path / "sae_weights.safetensors")
    torch.testing.assert_close(load_saelens(tmp_path).jumprelu_threshold(), sae.jumprelu_threshold(), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("normalize", ["none", "scalar", "layernorm"])
def test_jumprelu_saelens_round_trip(tmp_path, normalize):
    sae = _jumprelu_sae(normalize)
    back = load_saelens(save_saelens(sae, tmp_path / "sl"))
    with torch.no_grad():
        gap = (sae.pre_acts(sae.normalize(_x())[0]) - sae.jumprelu_threshold()).abs().min()
        assert gap > 1e-5  # no pre-activation so close to its threshold that rounding could flip it
        torch.testing.assert_close(back(_x()), sae(_x()), rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(back.encode(_x()) > 0, sae.encode(_x()) > 0)
    assert type(back) is JumpReLUSAE and back.cfg.hook == "blocks.3.hook_resid_post"


class _OneThreshold(TopKSAE):
    "A stand-in for BatchTopKSAE: in eval mode it keeps what clears one threshold shared by every latent."
    def encode_topk(self, x_n, k=None):
        pre = self.pre_acts(x_n)
        z = pre * (pre > 0.3)
        return TopKOut(z, torch.arange(z.shape[1]).expand_as(z))

    def jumprelu_threshold(self) -> torch.Tensor: return torch.full((self.cfg.n_latents,), 0.3)


def test_an_sae_with_a_threshold_exports_as_jumprelu(tmp_path):
    sae = _OneThreshold(SAEConfig(d_model=24, n_latents=96, k=6, normalize="scalar"), seed=3)
    with torch.no_grad(): sae.b_enc.uniform_(-0.2, 0.2); sae.norm_scale.fill_(2.0)
    folder = save_saelens(sae, tmp_path / "bt")
    back = load_saelens(folder)
    assert type(back) is JumpReLUSAE
    with torch.no_grad(): torch.testing.assert_close(back(_x()), sae(_x()), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="holds TopK SAEs only, not a _OneThreshold; it exports to save_saelens"):
        save_sparsify(sae, tmp_path / "sp")


def test_formats_that_cannot_hold_an_architecture_say_which_can(tmp_path):
    jr = _jumprelu_sae("none")
    with pytest.raises(ValueError, match="sparsify's SparseCoder holds TopK SAEs only, not a JumpReLUSAE; it exports "
                                         "to save_saelens \\(SAELens 'jumprelu'\\)"):
        save_sparsify(jr, tmp_path / "sp")
    with pytest.raises(ValueError, match="OpenAI's sparse_autoencoder format holds TopK SAEs only"):
        to_openai_state_dict(jr)
    relu = ReLUSAE(ReLUSAEConfig(d_model=24, n_latents=96))
    with pytest.raises(ValueError, match="holds TopK SAEs only, not a ReLUSAE; it exports to save_saelens "
                                         "\\(SAELens 'standard'\\)"):
        save_sparsify(relu, tmp_path / "sp")
    other = _sae("none")
    other.FORMAT = "someone_else.SAE/1"  # an architecture no peer format holds
    with pytest.raises(ValueError, match="SAELens export has no architecture for a TopKSAE: it writes TopKSAE"):
        save_saelens(other, tmp_path / "other")
    with pytest.raises(ValueError, match="it exports to none of the formats here"):
        save_sparsify(other, tmp_path / "other")
    folder = save_saelens(jr, tmp_path / "jr")
    cfg = (folder / "cfg.json").read_text().replace('"jumprelu"', '"temporal"')
    (folder / "cfg.json").write_text(cfg)
    with pytest.raises(ValueError, match="SAELens architecture 'temporal' is not read here; the ones read are"):
        load_saelens(folder)


def test_saelens_loads_our_jumprelu_export(tmp_path):
    sae_lens = pytest.importorskip("sae_lens")
    for normalize in ("none", "layernorm"):
        sae = _jumprelu_sae(normalize)
        theirs = sae_lens.SAE.load_from_disk(str(save_saelens(sae, tmp_path / normalize)), device="cpu")
        assert type(theirs).__name__ == "JumpReLUSAE"
        with torch.no_grad():
            torch.testing.assert_close(theirs.encode(_x()), sae.encode(_x()), rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(theirs(_x()), sae(_x()), rtol=1e-4, atol=1e-3)
