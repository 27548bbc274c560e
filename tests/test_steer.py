"""Steering (topk_sae.steer) in every normalization mode: the direction is the decoder row in model space, a clamp is
read back by the SAE, strength 0 is the identity; and requests a person could type are refused with a message."""
import pytest
import torch

from topk_sae.model import NORMALIZE_MODES, SAEConfig, TopKSAE
from topk_sae.steer import check_request, clamp_shift, direction, read_latent, steer, steer_acts, steer_sweep

def _sae_and_acts(mode: str, seed: int = 0):
    "A float64 SAE whose TopK keeps every latent (so that the tests see normalization, not TopK's competition)."
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 16, generator=g, dtype=torch.float64) * 3 + torch.randn(16, generator=g, dtype=torch.float64)
    sae = TopKSAE(SAEConfig(d_model=16, n_latents=32, k=32, normalize=mode), seed=seed).double()
    return sae.init_from_data_(x), x


def _far(sae) -> float:
    "The latent's pre-activation on its own direction: in 'layernorm' and 'unit_norm' modes, what it tends to far out."
    with torch.no_grad(): return float(sae.pre_acts(sae.normalize(sae.W_dec[3:4])[0])[0, 3])


@pytest.mark.parametrize("mode", NORMALIZE_MODES)
def test_the_direction_is_the_decoder_row_scaled_as_the_mode_scales(mode):
    sae, x = _sae_and_acts(mode)
    xc = x - x.mean(-1, keepdim=True)
    scale = {"layernorm": xc.std(-1, keepdim=True), "unit_norm": xc.norm(dim=-1, keepdim=True),
             "scalar": sae.norm_scale, "none": torch.ones(())}[mode]
    torch.testing.assert_close(direction(sae, 3, x), (sae.W_dec[3].detach() * scale).expand_as(x))


@pytest.mark.parametrize("mode", NORMALIZE_MODES)
@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.8])
def test_a_clamped_latent_is_read_back_at_its_value(mode, fraction):
    sae, x = _sae_and_acts(mode)
    value = fraction * _far(sae)
    steered = x + clamp_shift(sae, x, 3, value)[:, None] * direction(sae, 3, x)
    torch.testing.assert_close(read_latent(sae, steered, 3), torch.full((len(x),), value, dtype=x.dtype),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", NORMALIZE_MODES)
def test_adding_raises_the_reading_and_strength_0_is_the_identity(mode):
    sae, x = _sae_and_acts(mode)
    assert torch.equal(steer_acts(sae, x, 3, 0.0), x)
    s = 0.5 * _far(sae)
    up, down = read_latent(sae, steer_acts(sae, x, 3, s), 3), read_latent(sae, steer_acts(sae, x, 3, -s), 3)
    base = read_latent(sae, x, 3)
    assert (up >= base).all() and up.mean() > base.mean() + s / 4 and (down <= base).all()


def test_strength_0_leaves_logits_and_text_alone_on_the_tiny_model(tiny_sae):
    m, sae = tiny_sae.model, tiny_sae.sae
    ids = torch.tensor([m.tokenizer("We the People", add_special_tokens=False).input_ids])
    plain = steer(m, sae, "We the People", 7, 0.0, n_new=6)
    with torch.no_grad(): generated = m.generate(ids, max_new_tokens=6, do_sample=False, verbose=False)
    assert plain.kl == 0.0 and plain.text == m.tokenizer.decode(generated[0, ids.shape[1]:])


def test_a_sweep_reads_the_latent_rising_and_moves_the_next_token(tiny_sae):
    table = steer_sweep(tiny_sae.model, tiny_sae.sae, "The State of the Union", 7, (0.0, 1.0, 3.0, 6.0), n_new=4)
    assert list(table.columns) == ["latent_act", "kl", "next_token", "text"]
    assert table.latent_act.is_monotonic_increasing and table.kl.iloc[0] == 0 and table.kl.is_monotonic_increasing


@pytest.mark.parametrize(("prompt", "latent", "strength", "says"), [
    ("", 7, 1.0, "empty"), ("x", 7, 1.0, "empty"), ("ab" * 70, 7, 1.0, "more than the model's context of 128"),
    ("We the People", 128, 1.0, "out of range"), ("We the People", -1, 1.0, "out of range"),
    ("We the People", 7, 1e4, "absurd"), ("We the People", 7, float("inf"), "absurd")])
def test_bad_requests_say_what_to_do(tiny_sae, prompt, latent, strength, says):
    with pytest.raises(ValueError, match=says): check_request(tiny_sae.model, tiny_sae.sae, prompt, latent, strength)


def test_a_latent_that_is_not_an_index_is_refused(tiny_sae):
    with pytest.raises(TypeError, match="integer index"):
        check_request(tiny_sae.model, tiny_sae.sae, "We the", 2.5, 1.0)
