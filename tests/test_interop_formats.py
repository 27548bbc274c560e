"""Released SAEs of every family in, exports out, and `load_any`. Each loader is checked against that family's own
formula, written out here as its public code writes it (SAELens 6's `encode`/`decode` of its StandardSAE, GatedSAE,
TopKSAE, BatchTopK training SAE and Matryoshka training SAE; dictionary_learning's `encode`/`decode` of each
`dict_class`) on random weights with decoder rows that are not unit norm; not only by round trips through our writer."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from topk_sae.batchtopk import BatchTopKSAE
from topk_sae.core import save_json
from topk_sae.interop import (
    ANY_FORMATS,
    load_any,
    load_dictionary_learning,
    load_saelens,
    load_sparsify,
    save_saelens,
    save_sparsify,
    to_openai_state_dict,
)
from topk_sae.jumprelu import JumpReLUSAE
from topk_sae.matryoshka import MatryoshkaConfig, MatryoshkaSAE
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.relu import ReLUSAE, ReLUSAEConfig

D, N = 24, 96


def _weights(seed: int = 0) -> dict[str, torch.Tensor]:
    "SAELens-layout weights with decoder rows of norms 0.2 to 4."
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.nn.functional.normalize(torch.randn(N, D, generator=g), dim=1) * torch.linspace(0.2, 4, N)[:, None]
    return {"W_enc": torch.randn(D, N, generator=g) / D**0.5, "W_dec": W_dec,
            "b_enc": torch.randn(N, generator=g) * 0.2, "b_dec": torch.randn(D, generator=g)}


def _x(n: int = 64, seed: int = 7) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed)) * 2 + 0.5


def _unit_norm(sae) -> bool:
    norms = sae.W_dec.detach().norm(dim=1)
    return bool(torch.allclose(norms[norms > 0], torch.ones_like(norms[norms > 0]), atol=1e-5))


def _saelens_folder(path, arch: str, weights: dict, **cfg):
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, path / "sae_weights.safetensors")
    save_json({"architecture": arch, "d_in": D, "d_sae": N, "dtype": "float32", "apply_b_dec_to_input": True,
               "normalize_activations": "none", "metadata": {"hook_name": "blocks.2.hook_resid_post",
                                                             "model_name": "gpt2", "sae_lens_version": "6.5.0"},
               **cfg}, path / "cfg.json")
    return path


class _SAELensIO:
    "SAELens' `process_sae_in` and its undoing after `decode`, for one normalize_activations setting."
    def __init__(self, mode: str, apply_b_dec: bool, b_dec: torch.Tensor, scale: float = 1.0, whitening=None):
        self.mode, self.apply_b_dec, self.b_dec, self.scale, self.whitening = mode, apply_b_dec, b_dec, scale, whitening

    def sae_in(self, x):
        if self.mode == "layer_norm":
            self.mu = x.mean(-1, keepdim=True)
            x = x - self.mu
            self.std = x.std(-1, keepdim=True)
            x = x / (self.std + 1e-5)
        elif self.mode == "expected_average_only_in": x = x * self.scale  # the ActivationScaler of training
        elif self.mode == "covariance_whitening": x = (x - self.whitening["mean"]) @ self.whitening["matrix"]
        return x - self.b_dec * self.apply_b_dec

    def out(self, y):
        if self.mode == "layer_norm": return y * self.std + self.mu
        if self.mode == "expected_average_only_in": return y / self.scale
        if self.mode == "covariance_whitening": return y @ self.whitening["inverse_matrix"] + self.whitening["mean"]
        return y


NORMS = [("none", True), ("layer_norm", False), ("expected_average_only_in", True), ("expected_average_only_in", False),
         ("covariance_whitening", True), ("covariance_whitening", False)]


def _whitening(seed: int = 40) -> dict[str, torch.Tensor]:
    "A whitening of correlated activations, z = (x - mean) M, as SAELens' ActivationScaler estimates one."
    g = torch.Generator().manual_seed(seed)
    acts = torch.randn(4096, D, generator=g, dtype=torch.float64) @ torch.randn(D, D, generator=g, dtype=torch.float64)
    lam, E = torch.linalg.eigh(torch.cov(acts.T))
    lam = lam.clamp(min=0) + 1e-3
    return {"mean": acts.mean(0).float(), "matrix": (E * lam.rsqrt()).float().contiguous(),
            "inverse_matrix": (lam.sqrt()[:, None] * E.T).float().contiguous()}


@pytest.mark.parametrize(("mode", "apply_b_dec"), NORMS)
def test_saelens_standard_computes_its_formula(tmp_path, mode, apply_b_dec):
    w = _weights(1)
    folder = _saelens_folder(tmp_path / "sl", "standard", w, normalize_activations=mode,
                             apply_b_dec_to_input=apply_b_dec)
    if mode == "expected_average_only_in": save_json({"scaling_factor": 0.3}, folder / "activation_scaler.json")
    save_file(_whitening(), folder / "activation_whitening.safetensors")
    sae = load_saelens(folder)
    io, x = _SAELensIO(mode, apply_b_dec, w["b_dec"], 0.3, _whitening()), _x()
    feature_acts = torch.relu(io.sae_in(x) @ w["W_enc"] + w["b_enc"])  # StandardSAE.encode
    out = io.out(feature_acts @ w["W_dec"] + w["b_dec"])  # StandardSAE.decode
    with torch.no_grad(): torch.testing.assert_close(sae(x), out, rtol=1e-4, atol=1e-4)
    assert type(sae) is ReLUSAE and _unit_norm(sae) and sae.cfg.hook == "blocks.2.hook_resid_post"
    assert sae.cfg.normalize == {"none": "none", "layer_norm": "layernorm", "covariance_whitening": "none"}.get(mode,
                                                                                                           "scalar")


@pytest.mark.parametrize(("mode", "apply_b_dec"), NORMS)
def test_saelens_gated_computes_its_formula(tmp_path, mode, apply_b_dec):
    w, g = _weights(2), torch.Generator().manual_seed(3)
    w |= {"b_gate": torch.randn(N, generator=g) * 0.5, "r_mag": torch.randn(N, generator=g) * 0.3,
          "b_mag": torch.randn(N, generator=g) * 0.5}
    del w["b_enc"]
    folder = _saelens_folder(tmp_path / "sl", "gated", w, normalize_activations=mode, apply_b_dec_to_input=apply_b_dec)
    save_file(_whitening(), folder / "activation_whitening.safetensors")
    sae = load_saelens(folder, norm_scaling_factor=0.3)
    io, x = _SAELensIO(mode, apply_b_dec, w["b_dec"], 0.3, _whitening()), _x()
    sae_in = io.sae_in(x)
    active = (sae_in @ w["W_enc"] + w["b_gate"] > 0).float()  # GatedSAE.encode
    magnitude = torch.relu(sae_in @ (w["W_enc"] * w["r_mag"].exp()) + w["b_mag"])
    feature_acts = active * magnitude
    assert 0.1 < (feature_acts > 0).float().mean() < 0.6
    assert ((w["b_mag"] - w["r_mag"].exp() * w["b_gate"]) < 0).any()  # some thresholds clamp to 0
    with torch.no_grad():
        torch.testing.assert_close(sae(x), io.out(feature_acts @ w["W_dec"] + w["b_dec"]), rtol=1e-4, atol=1e-4)
        assert torch.equal(sae.encode(x) > 0, feature_acts > 0)
    assert type(sae) is JumpReLUSAE and _unit_norm(sae)


def test_saelens_topk_rescaled_by_decoder_norm_is_folded(tmp_path):
    "rescale_acts_by_decoder_norm: TopK of hidden_pre * |W_dec_i|, decoded by acts / |W_dec_i| (SAELens' TopKSAE)."
    w = _weights(4)
    sae = load_saelens(_saelens_folder(tmp_path / "sl", "topk", w, k=6, rescale_acts_by_decoder_norm=True))
    x, norms = _x(), w["W_dec"].norm(dim=-1)
    hidden_pre = ((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]) * norms
    top = hidden_pre.topk(6, dim=-1)
    feature_acts = torch.zeros_like(hidden_pre).scatter(-1, top.indices, top.values.relu())
    out = (feature_acts * (1 / norms)) @ w["W_dec"] + w["b_dec"]
    with torch.no_grad():
        torch.testing.assert_close(sae(x), out, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(sae.encode(x), feature_acts, rtol=1e-4, atol=1e-4)
    assert type(sae) is TopKSAE and sae.cfg.k == 6 and _unit_norm(sae)


def test_saelens_topk_without_rescaling_keeps_its_rows(tmp_path):
    w = _weights(5)
    sae = load_saelens(_saelens_folder(tmp_path / "sl", "topk", w, k=6, rescale_acts_by_decoder_norm=False))
    x = _x()
    hidden_pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    top = hidden_pre.topk(6, dim=-1)
    feature_acts = torch.zeros_like(hidden_pre).scatter(-1, top.indices, top.values.relu())
    with torch.no_grad(): torch.testing.assert_close(sae(x), feature_acts @ w["W_dec"] + w["b_dec"], rtol=1e-4,
                                                     atol=1e-4)
    torch.testing.assert_close(sae.W_dec.detach(), w["W_dec"])  # TopK has no fold: rows as they are


def test_saelens_config_from_before_version_6(tmp_path):
    "No architecture, activation_fn 'topk' with activation_fn_kwargs.k, hook_point, a boolean normalize flag."
    w = _weights(6)
    folder = tmp_path / "old"
    folder.mkdir()
    save_file(w, folder / "sae_weights.safetensors")
    save_json({"d_in": D, "d_sae": N, "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 5},
               "hook_point": "blocks.0.hook_resid_pre", "model_name": "gpt2-small", "normalize_activations": False},
              folder / "cfg.json")
    sae = load_saelens(folder)
    assert (type(sae), sae.cfg.k, sae.cfg.hook, sae.cfg.model_name) == (TopKSAE, 5, "blocks.0.hook_resid_pre",
                                                                        "gpt2-small")
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["activation_fn_str"], cfg["activation_fn_kwargs"]
    (folder / "cfg.json").write_text(json.dumps(cfg))
    assert type(load_saelens(folder)) is ReLUSAE  # SAELens' default architecture: 'standard'


def _batch_topk(acts: torch.Tensor, k: float) -> torch.Tensor:
    "SAELens' BatchTopK activation (and dictionary_learning's, on post-ReLU acts): the k * batch largest of relu."
    acts = acts.relu()
    top = acts.flatten().topk(int(k * acts.shape[0]))
    return torch.zeros(acts.numel()).scatter(-1, top.indices, top.values).reshape(acts.shape)


@pytest.mark.parametrize("rescale", [True, False])
def test_saelens_batchtopk_checkpoint(tmp_path, rescale):
    "Training mode: SAELens' BatchTopK training encode; eval mode: the JumpReLU SAELens saves for inference."
    w = _weights(7)
    if not rescale: w["W_dec"] = torch.nn.functional.normalize(w["W_dec"], dim=1)  # as BatchTopK training keeps them
    state = {**w, "topk_threshold": torch.tensor(0.6, dtype=torch.float64)}
    sae = load_saelens(_saelens_folder(tmp_path / "sl", "batchtopk", state, k=4.0, rescale_acts_by_decoder_norm=rescale,
                                       topk_threshold_lr=0.01))
    x, norms = _x(), w["W_dec"].norm(dim=-1)
    hidden_pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    if rescale: hidden_pre = hidden_pre * norms
    inv = (1 / norms) if rescale else torch.ones(N)
    batch = _batch_topk(hidden_pre, 4)
    inference = hidden_pre.relu() * (hidden_pre > 0.6)
    assert type(sae) is BatchTopKSAE and sae.cfg.k == 4 and sae.threshold.item() == pytest.approx(0.6)
    with torch.no_grad():
        torch.testing.assert_close(sae.train().encode(x), batch, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(sae.eval()(x), (inference * inv) @ w["W_dec"] + w["b_dec"], rtol=1e-4, atol=1e-4)


def test_saelens_batchtopk_with_free_rows_becomes_its_jumprelu_inference_form(tmp_path):
    w = _weights(8)
    state = {**w, "topk_threshold": torch.tensor(0.6, dtype=torch.float64)}
    sae = load_saelens(_saelens_folder(tmp_path / "sl", "batchtopk", state, k=4, rescale_acts_by_decoder_norm=False))
    x = _x()
    hidden_pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    out = (hidden_pre.relu() * (hidden_pre > 0.6)) @ w["W_dec"] + w["b_dec"]
    with torch.no_grad(): torch.testing.assert_close(sae(x), out, rtol=1e-4, atol=1e-4)
    assert type(sae) is JumpReLUSAE and _unit_norm(sae)


def test_saelens_matryoshka_checkpoint(tmp_path):
    w = _weights(9)
    state = {**w, "topk_threshold": torch.tensor(0.5, dtype=torch.float64)}
    folder = _saelens_folder(tmp_path / "sl", "matryoshka_batchtopk", state, k=4, matryoshka_widths=[12, 48],
                             rescale_acts_by_decoder_norm=True, use_matryoshka_aux_loss=False)
    sae = load_saelens(folder)
    assert type(sae) is MatryoshkaSAE and sae.cfg.prefixes == (12, 48, N)  # d_sae added last, as SAELens adds it
    x, norms = _x(), w["W_dec"].norm(dim=-1)
    hidden_pre = ((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]) * norms
    acts = hidden_pre.relu() * (hidden_pre > 0.5)
    with torch.no_grad(): torch.testing.assert_close(sae(x), (acts / norms) @ w["W_dec"] + w["b_dec"], rtol=1e-4,
                                                     atol=1e-4)


def test_saelens_old_scaling_factor_is_folded_into_the_decoder(tmp_path):
    "SAELens before 6 multiplied the code by a per-latent `scaling_factor` before decoding."
    w = _weights(10)
    sf = torch.rand(N, generator=torch.Generator().manual_seed(0)) + 0.5
    sae = load_saelens(_saelens_folder(tmp_path / "sl", "standard", {**w, "scaling_factor": sf}))
    x = _x()
    feature_acts = torch.relu((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
    with torch.no_grad(): torch.testing.assert_close(sae(x), (feature_acts * sf) @ w["W_dec"] + w["b_dec"],
                                                     rtol=1e-4, atol=1e-4)


def test_saelens_settings_without_a_counterpart_are_refused(tmp_path):
    w = _weights(11)
    folder = _saelens_folder(tmp_path / "a", "standard", w, normalize_activations="expected_average_only_in")
    with pytest.raises(ValueError, match="not in the folder: pass load_saelens\\(path, norm_scaling_factor=s\\)"):
        load_saelens(folder)
    with pytest.raises(ValueError, match="must be a positive finite number"):
        load_saelens(folder, norm_scaling_factor=-2.0)
    assert load_saelens(folder, norm_scaling_factor=1.0).norm_scale.item() == 1.0
    folder = _saelens_folder(tmp_path / "c", "standard", w, normalize_activations="constant_norm_rescale")
    with pytest.raises(ValueError, match="normalize_activations='constant_norm_rescale' has no counterpart here"):
        load_saelens(folder)
    folder = _saelens_folder(tmp_path / "w", "standard", w, normalize_activations="covariance_whitening")
    with pytest.raises(ValueError, match="needs the whitening SAELens saves beside a checkpoint"):
        load_saelens(folder)
    save_file({"mean": torch.zeros(D), "matrix": torch.eye(D)}, folder / "activation_whitening.safetensors")
    with pytest.raises(ValueError, match="missing weights \\['inverse_matrix'\\]"):
        load_saelens(folder)
    folder = _saelens_folder(tmp_path / "g", "gated", w)  # b_enc where b_gate, r_mag, b_mag should be
    with pytest.raises(ValueError, match="missing weights \\['b_gate', 'r_mag', 'b_mag'\\]"):
        load_saelens(folder)
    folder = _saelens_folder(tmp_path / "bt", "batchtopk", {**w, "topk_threshold": torch.tensor(0.1)}, k=2.5)
    with pytest.raises(ValueError, match="k=2.5: k must be a whole number"):
        load_saelens(folder)


# dictionary_learning: ae.pt + config.json, each dict_class with its own encode


def _dl_folder(path, dict_class: str, state: dict, **trainer):
    path.mkdir(parents=True)
    torch.save(state, path / "ae.pt")
    save_json({"trainer": {"dict_class": dict_class, "activation_dim": D, "dict_size": N, "layer": 3,
                           "lm_name": "EleutherAI/pythia-70m-deduped", **trainer}, "buffer": {"ctx_len": 128}},
              path / "config.json")
    return path


def _linear_state(w: dict) -> dict:
    "nn.Linear layout: encoder.weight (n, d), encoder.bias, decoder.weight (d, n)."
    return {"encoder.weight": w["W_enc"].T.contiguous(), "encoder.bias": w["b_enc"],
            "decoder.weight": w["W_dec"].T.contiguous()}


def test_dictionary_learning_autoencoder(tmp_path):
    "AutoEncoder: relu(encoder(x - bias)), decoder(f) + bias; decoder columns of any norm (April update)."
    w = _weights(12)
    state = {**_linear_state(w), "bias": w["b_dec"]}
    sae = load_dictionary_learning(_dl_folder(tmp_path / "t", "AutoEncoder", state, trainer_class="StandardTrainer"))
    x = _x()
    f = torch.relu(torch.nn.functional.linear(x - state["bias"], state["encoder.weight"], state["encoder.bias"]))
    x_hat = torch.nn.functional.linear(f, state["decoder.weight"]) + state["bias"]
    with torch.no_grad(): torch.testing.assert_close(sae(x), x_hat, rtol=1e-4, atol=1e-4)
    assert type(sae) is ReLUSAE and _unit_norm(sae) and sae.cfg.model_name == "EleutherAI/pythia-70m-deduped"


def test_dictionary_learning_topk(tmp_path):
    "AutoEncoderTopK: the k largest of relu(encoder(x - b_dec)); its threshold is not used by encode's default."
    w = _weights(13)
    state = {**_linear_state(w), "b_dec": w["b_dec"], "k": torch.tensor(5, dtype=torch.int),
             "threshold": torch.tensor(0.7)}
    sae = load_dictionary_learning(_dl_folder(tmp_path / "t", "AutoEncoderTopK", state, k=5) / "ae.pt")
    x = _x()
    post_relu = torch.relu(torch.nn.functional.linear(x - w["b_dec"], state["encoder.weight"], w["b_enc"]))
    top = post_relu.topk(5, dim=-1, sorted=False)
    f = torch.zeros_like(post_relu).scatter_(-1, top.indices, top.values)
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), f, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(sae(x), f @ w["W_dec"] + w["b_dec"], rtol=1e-4, atol=1e-4)
    assert type(sae) is TopKSAE and sae.cfg.k == 5


@pytest.mark.parametrize("threshold", [0.4, -1.0])
def test_dictionary_learning_batchtopk(tmp_path, threshold):
    "BatchTopKSAE: relu(pre) * (relu(pre) > threshold) at inference (-1: never calibrated), batch TopK in training."
    w = _weights(14)
    w["W_dec"] = torch.nn.functional.normalize(w["W_dec"], dim=1)  # set_decoder_norm_to_unit_norm
    state = {**_linear_state(w), "b_dec": w["b_dec"], "k": torch.tensor(4, dtype=torch.int),
             "threshold": torch.tensor(threshold)}
    sae = load_dictionary_learning(_dl_folder(tmp_path / "t", "BatchTopKSAE", state, k=4))
    x = _x()
    post_relu = torch.relu((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
    with torch.no_grad():
        torch.testing.assert_close(sae.eval().encode(x), post_relu * (post_relu > threshold), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(sae.train().encode(x), _batch_topk(post_relu, 4), rtol=1e-4, atol=1e-4)
    assert type(sae) is BatchTopKSAE


def test_dictionary_learning_matryoshka(tmp_path):
    w = _weights(15)
    w["W_dec"] = torch.nn.functional.normalize(w["W_dec"], dim=1)
    state = {**w, "k": torch.tensor(4, dtype=torch.int), "threshold": torch.tensor(0.3),
             "group_sizes": torch.tensor([8, 24, 64])}
    sae = load_dictionary_learning(_dl_folder(tmp_path / "t", "MatryoshkaBatchTopKSAE", state,
                                              group_fractions=[1 / 12, 1 / 4, 2 / 3]))
    assert type(sae) is MatryoshkaSAE and sae.cfg.prefixes == (8, 32, 96)
    x = _x()
    post_relu = torch.relu((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
    f = post_relu * (post_relu > 0.3)
    with torch.no_grad(): torch.testing.assert_close(sae(x), f @ w["W_dec"] + w["b_dec"], rtol=1e-4, atol=1e-4)


def test_dictionary_learning_gated_and_jumprelu(tmp_path):
    w, g = _weights(16), torch.Generator().manual_seed(17)
    gated = {"encoder.weight": w["W_enc"].T.contiguous(), "decoder.weight": w["W_dec"].T.contiguous(),
             "decoder_bias": w["b_dec"], "r_mag": torch.randn(N, generator=g) * 0.3,
             "gate_bias": torch.randn(N, generator=g) * 0.5, "mag_bias": torch.randn(N, generator=g) * 0.5}
    sae = load_dictionary_learning(_dl_folder(tmp_path / "g", "GatedAutoEncoder", gated))
    x = _x()
    x_enc = torch.nn.functional.linear(x - gated["decoder_bias"], gated["encoder.weight"])
    f = (x_enc + gated["gate_bias"] > 0).float() * torch.relu(gated["r_mag"].exp() * x_enc + gated["mag_bias"])
    with torch.no_grad(): torch.testing.assert_close(sae(x), f @ w["W_dec"] + w["b_dec"], rtol=1e-4, atol=1e-4)
    assert type(sae) is JumpReLUSAE
    jump = {**w, "threshold": torch.rand(N, generator=g) * 0.5}
    sae = load_dictionary_learning(_dl_folder(tmp_path / "j", "JumpReluAutoEncoder", jump))
    pre_jump = x @ w["W_enc"] + w["b_enc"]  # apply_b_dec_to_input is False
    f = torch.relu(pre_jump * (pre_jump > jump["threshold"]))
    with torch.no_grad(): torch.testing.assert_close(sae(x), f @ w["W_dec"] + w["b_dec"], rtol=1e-4, atol=1e-4)


def test_dictionary_learning_backup_and_checkpoint_files(tmp_path):
    "A mid-training backup ({'ae', 'norm_factor', ...}) works on act / norm_factor; checkpoints/ae_N.pt is found."
    w = _weights(18)
    state = {**_linear_state(w), "bias": w["b_dec"]}
    folder = _dl_folder(tmp_path / "t", "AutoEncoder", {"step": 10, "ae": state, "config": {}, "norm_factor": 3.0})
    sae = load_dictionary_learning(folder)
    x = _x()
    f = torch.relu((x / 3.0 - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
    with torch.no_grad(): torch.testing.assert_close(sae(x), (f @ w["W_dec"] + w["b_dec"]) * 3.0, rtol=1e-4, atol=1e-4)
    assert sae.cfg.normalize == "scalar"
    (folder / "checkpoints").mkdir()
    torch.save(state, folder / "checkpoints" / "ae_100.pt")
    assert type(load_dictionary_learning(folder / "checkpoints" / "ae_100.pt")) is ReLUSAE


def test_dictionary_learning_bad_files(tmp_path):
    w = _weights(19)
    state = {**_linear_state(w), "bias": w["b_dec"]}
    with pytest.raises(ValueError, match="trainer.dict_class 'IdentityDict' is not read here"):
        load_dictionary_learning(_dl_folder(tmp_path / "a", "IdentityDict", state))
    with pytest.raises(ValueError, match="missing weights \\['b_dec', 'k', 'threshold'\\]"):
        load_dictionary_learning(_dl_folder(tmp_path / "b", "BatchTopKSAE", state))
    folder = _dl_folder(tmp_path / "c", "AutoEncoder", state)
    (folder / "ae.pt").write_bytes((folder / "ae.pt").read_bytes()[:200])
    with pytest.raises(ValueError, match="ae.pt is not a readable state dict"):
        load_dictionary_learning(folder)
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="needs ae.pt and config.json"):
        load_dictionary_learning(folder)


# exports


def test_relu_sae_exports_as_saelens_standard(tmp_path):
    "The exported folder, read with SAELens' StandardSAE formula, computes what the ReLUSAE computes."
    sae = ReLUSAE(ReLUSAEConfig(d_model=D, n_latents=N, normalize="scalar"), seed=2)
    with torch.no_grad(): sae.b_enc.uniform_(-0.1, 0.1); sae.b_dec.normal_(); sae.norm_scale.fill_(2.0)
    folder = save_saelens(sae, tmp_path / "sl")
    cfg, w = json.loads((folder / "cfg.json").read_text()), load_file(folder / "sae_weights.safetensors")
    assert (cfg["architecture"], cfg["normalize_activations"], sorted(w)) == ("standard", "none",
                                                                             ["W_dec", "W_enc", "b_dec", "b_enc"])
    x = _x()
    feature_acts = torch.relu((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
    with torch.no_grad():
        torch.testing.assert_close(feature_acts @ w["W_dec"] + w["b_dec"], sae(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(load_saelens(folder)(x), sae(x), rtol=1e-4, atol=1e-4)


def test_matryoshka_exports_as_saelens_jumprelu(tmp_path):
    sae = MatryoshkaSAE(MatryoshkaConfig(d_model=D, n_latents=N, k=4, normalize="none"), seed=3)
    with torch.no_grad(): sae.b_enc.uniform_(-0.1, 0.1); sae.threshold.fill_(0.35)
    folder = save_saelens(sae, tmp_path / "sl")
    w = load_file(folder / "sae_weights.safetensors")
    x = _x()
    hidden_pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    feature_acts = torch.relu(hidden_pre) * (hidden_pre > w["threshold"])  # SAELens' JumpReLUSAE.encode
    with torch.no_grad(): torch.testing.assert_close(feature_acts @ w["W_dec"] + w["b_dec"], sae.eval()(x),
                                                     rtol=1e-4, atol=1e-4)


def test_exports_without_a_counterpart_name_the_alternative(tmp_path):
    jr = load_saelens(save_saelens(MatryoshkaSAE(MatryoshkaConfig(d_model=D, n_latents=N, k=4)), tmp_path / "m"))
    relu = ReLUSAE(ReLUSAEConfig(d_model=D, n_latents=N, normalize="none"))
    bt = BatchTopKSAE(SAEConfig(d_model=D, n_latents=N, k=4, normalize="none"))
    for sae, arch in ((jr, "jumprelu"), (relu, "standard"), (bt, "jumprelu")):
        with pytest.raises(ValueError, match=f"sparsify's SparseCoder holds TopK SAEs only, not a {type(sae).__name__}"
                                             f"; it exports to save_saelens \\(SAELens '{arch}'\\)"):
            save_sparsify(sae, tmp_path / "sp")
        with pytest.raises(ValueError, match="OpenAI's sparse_autoencoder format holds TopK SAEs only"):
            to_openai_state_dict(sae)
    assert not (tmp_path / "sp").exists()


def test_saelens_reads_our_standard_export(tmp_path):
    sae_lens = pytest.importorskip("sae_lens")
    sae = ReLUSAE(ReLUSAEConfig(d_model=D, n_latents=N, normalize="layernorm"), seed=4)
    with torch.no_grad(): sae.b_enc.uniform_(-0.1, 0.1); sae.b_dec.normal_()
    theirs = sae_lens.SAE.load_from_disk(str(save_saelens(sae, tmp_path / "sl")), device="cpu")
    assert type(theirs).__name__ == "StandardSAE"
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode(_x()), sae.encode(_x()), rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(theirs(_x()), sae(_x()), rtol=1e-4, atol=1e-3)


# load_any: which format, and one error listing every format tried


def _every_format(tmp_path) -> dict[str, object]:
    w = _weights(20)
    topk = TopKSAE(SAEConfig(d_model=D, n_latents=N, k=4, normalize="layernorm"))
    np.savez(tmp_path / "params.npz", **{k: v.numpy() for k, v in w.items()}, threshold=np.full(N, 0.2, np.float32))
    torch.save(to_openai_state_dict(topk), tmp_path / "openai.pt")
    gated = {**w, "b_gate": w["b_enc"] + 1, "r_mag": w["b_enc"] * 0, "b_mag": w["b_enc"] * 2}
    return {"topk_sae": ReLUSAE(ReLUSAEConfig(d_model=D, n_latents=N)).save(tmp_path / "own"),
            "SAELens": _saelens_folder(tmp_path / "sl", "gated", gated),
            "sparsify": save_sparsify(TopKSAE(SAEConfig(d_model=D, n_latents=N, k=4, normalize="none")),
                                      tmp_path / "sp"),
            "dictionary_learning": _dl_folder(tmp_path / "dl", "AutoEncoder", {**_linear_state(w), "bias": w["b_dec"]}),
            "Gemma Scope": tmp_path / "params.npz", "OpenAI": tmp_path / "openai.pt"}


def test_load_any_names_the_format_it_read(tmp_path, capsys):
    expected = {"topk_sae": ReLUSAE, "SAELens": JumpReLUSAE, "sparsify": TopKSAE, "dictionary_learning": ReLUSAE,
                "Gemma Scope": JumpReLUSAE, "OpenAI": TopKSAE}
    for name, path in _every_format(tmp_path).items():
        sae = load_any(path)
        assert type(sae) is expected[name], name
        assert f"read as {name} -> {expected[name].__name__}" in capsys.readouterr().out
    assert list(ANY_FORMATS) == list(expected)
    assert type(load_any(tmp_path / "sp" / "cfg.json", quiet=True)) is TopKSAE  # a file of a folder: its folder
    assert capsys.readouterr().out == ""


def test_load_any_on_unknown_or_damaged_files_lists_every_format(tmp_path):
    paths = _every_format(tmp_path)
    (tmp_path / "random.bin").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="is not an SAE in any format read here; tried 6 formats") as e:
        load_any(tmp_path / "random.bin")
    assert all(f"  {name}: " in str(e.value) for name in ANY_FORMATS)
    weights = paths["SAELens"] / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:300])  # truncated
    with pytest.raises(ValueError, match="SAELens: .*sae_weights.safetensors is corrupt or truncated"):
        load_any(paths["SAELens"])
    del_bias = {**_linear_state(_weights(21))}  # an AutoEncoder without its 'bias'
    torch.save(del_bias, paths["dictionary_learning"] / "ae.pt")
    with pytest.raises(ValueError, match="dictionary_learning: .*missing weights \\['bias'\\]"):
        load_any(paths["dictionary_learning"])
    with pytest.raises(FileNotFoundError, match="no SAE at"):
        load_any(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="tried 6 formats"):
        load_any(empty)


# The real SAELens (in the benchmark environment): folders SAELens writes itself, read here, against its own outputs


def _theirs(module, cls: str, cfg_cls: str, weights: dict, **cfg):
    "A SAELens SAE of class `cls` with the given weights (every other parameter left as SAELens initializes it)."
    sae = getattr(module, cls)(getattr(module, cfg_cls)(d_in=D, d_sae=N, **cfg))
    with torch.no_grad():
        for k, v in weights.items(): getattr(sae, k).copy_(v)
    return sae


def _gated_weights(seed: int) -> dict:
    w, g = _weights(seed), torch.Generator().manual_seed(seed + 100)
    return {"W_enc": w["W_enc"], "W_dec": w["W_dec"], "b_dec": w["b_dec"], "b_gate": torch.randn(N, generator=g) * 0.5,
            "r_mag": torch.randn(N, generator=g) * 0.3, "b_mag": torch.randn(N, generator=g) * 0.5}


@pytest.mark.parametrize(("mode", "apply_b_dec"), NORMS)
@pytest.mark.parametrize("arch", ["standard", "gated", "jumprelu", "topk"])
def test_folders_saelens_writes_compute_what_saelens_computes(tmp_path, arch, mode, apply_b_dec):
    sae_lens = pytest.importorskip("sae_lens")
    from sae_lens.training.activation_scaler import ActivationScaler, ActivationWhitening
    w = _gated_weights(30) if arch == "gated" else {**_weights(30), "threshold": torch.rand(N) * 0.4}
    if arch in ("standard", "topk"): del w["threshold"]
    extra = {"k": 6, "rescale_acts_by_decoder_norm": True} if arch == "topk" else {}
    names = {"standard": "StandardSAE", "gated": "GatedSAE", "jumprelu": "JumpReLUSAE", "topk": "TopKSAE"}
    theirs = _theirs(sae_lens, names[arch], names[arch] + "Config", w, normalize_activations=mode,
                     apply_b_dec_to_input=apply_b_dec, **extra)
    theirs.save_model(tmp_path / "sl")
    scaler = ActivationScaler(scaling_factor=0.3 if mode == "expected_average_only_in" else None,
                              whitening=ActivationWhitening(**_whitening()) if mode == "covariance_whitening" else None)
    scaler.save(str(tmp_path / "sl" / "activation_scaler.json"))  # as SAELens' trainer writes it beside a checkpoint
    ours, x = load_saelens(tmp_path / "sl"), _x()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), scaler.unscale(theirs(scaler.scale(x))), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ours.encode(x) > 0, theirs.encode(scaler.scale(x)) > 0)
    assert _unit_norm(ours) or arch == "topk"


@pytest.mark.parametrize("arch", ["batchtopk", "matryoshka_batchtopk"])
def test_saelens_batchtopk_checkpoints_and_inference_saves(tmp_path, arch):
    "SAELens' training checkpoint (training encode: batch TopK) and its save_inference_model (a JumpReLU SAE)."
    sae_lens = pytest.importorskip("sae_lens")
    cls = "MatryoshkaBatchTopKTrainingSAE" if arch == "matryoshka_batchtopk" else "BatchTopKTrainingSAE"
    extra = {"matryoshka_widths": [12, 48, N]} if arch == "matryoshka_batchtopk" else {}
    w = _weights(31)
    theirs = _theirs(sae_lens, cls, cls + "Config", w, k=4, rescale_acts_by_decoder_norm=True, **extra)
    theirs.topk_threshold = torch.tensor(0.6, dtype=torch.double)
    theirs.save_model(tmp_path / "ckpt")
    theirs.save_inference_model(tmp_path / "final")
    ours, final, x = load_saelens(tmp_path / "ckpt"), load_saelens(tmp_path / "final"), _x()
    assert type(ours) is (MatryoshkaSAE if extra else BatchTopKSAE) and type(final) is JumpReLUSAE
    their_final = sae_lens.SAE.load_from_disk(str(tmp_path / "final"), device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(ours.train().encode(x), theirs.encode(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ours.eval()(x), their_final(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(final(x), their_final(x), rtol=1e-4, atol=1e-4)


def test_saelens_reads_our_matryoshka_export(tmp_path):
    sae_lens = pytest.importorskip("sae_lens")
    sae = MatryoshkaSAE(MatryoshkaConfig(d_model=D, n_latents=N, k=4, normalize="layernorm"), seed=5)
    with torch.no_grad(): sae.b_enc.uniform_(-0.1, 0.1); sae.threshold.fill_(0.35)
    theirs = sae_lens.SAE.load_from_disk(str(save_saelens(sae, tmp_path / "sl")), device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode(_x()), sae.encode(_x()), rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(theirs(_x()), sae(_x()), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("normalize_decoder", [True, False])
def test_folders_sparsify_writes_compute_what_sparsify_computes(tmp_path, normalize_decoder):
    sparsify = pytest.importorskip("sparsify")
    w = _weights(32)
    cfg = sparsify.SparseCoderConfig(num_latents=N, k=6, normalize_decoder=normalize_decoder)
    theirs = sparsify.SparseCoder(D, cfg)
    with torch.no_grad():
        theirs.encoder.weight.copy_(w["W_enc"].T); theirs.encoder.bias.copy_(w["b_enc"]); theirs.b_dec.copy_(w["b_dec"])
        theirs.W_dec.copy_(torch.nn.functional.normalize(w["W_dec"], dim=1) if normalize_decoder else w["W_dec"])
    theirs.save_to_disk(tmp_path / "sp")
    ours, x = load_sparsify(tmp_path / "sp"), _x()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x).sae_out, rtol=1e-4, atol=1e-4)
        top = theirs.encode(x)
        dense = torch.zeros(len(x), N).scatter(-1, top.top_indices, top.top_acts)
        torch.testing.assert_close(ours.encode(x), dense, rtol=1e-4, atol=1e-4)
