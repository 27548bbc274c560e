"""Widget state, driven from Python: every callback's effect on the widgets, and bad input shown as a message."""
import copy

import ipywidgets as widgets
import pytest
import torch

from topk_sae.latents import AblationStep, LatentData, Snippet
from topk_sae.widgets import LatentInspector, PromptInspector, latent_card_html

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def inspector(tiny_sae):
    sae = copy.deepcopy(tiny_sae.sae)
    with torch.no_grad(): sae.b_enc[3] = -1e6  # latent 3 can never fire
    return LatentInspector(sae, tiny_sae.model, tiny_sae.contexts[300:360], progress=False)


def test_a_latent_that_never_fires_gets_a_message_not_an_error(inspector):
    data = inspector.show_latent(3)
    assert data.n_fires == 0 and "never fires" in inspector.card.value
    assert inspector.figure is None and inspector.message.value == ""


def test_typing_an_index_and_pressing_open(inspector):
    inspector.latent_box.value = 7
    inspector.show_latent(inspector.latent_box.value)
    assert inspector.data.latent == 7 and "Latent 7" in inspector.card.value and inspector.figure is not None


@pytest.mark.parametrize("bad", [-1, 128, 10**9])
def test_out_of_range_latents_keep_the_previous_view(inspector, bad):
    inspector.show_latent(5)
    assert inspector.show_latent(bad) is None
    assert "out of range" in inspector.message.value and inspector.data.latent == 5


def test_sorting_and_ranks(inspector):
    inspector.sort_by.value = "index"
    assert inspector.data.latent == 0
    inspector.rank.value = 9
    assert inspector.data.latent == 9


def test_prompt_to_latent(inspector):
    prompts = PromptInspector(inspector)
    prompts.run("The Congress of the United States")
    position, _ = prompts.token.options[2][1], None
    prompts.token.value = position  # the observer lists the latents there
    assert prompts.latent.options and prompts.latent.options[0][1] == prompts.data.latents[position][0][0]
    prompts.latent.value = prompts.latent.options[0][1]
    assert prompts.open_latent(prompts.latent.value).latent == inspector.data.latent == prompts.latent.value
    prompts.run("   ")
    assert "empty" in prompts.message.value and prompts.latent.options == ()


def test_every_field_of_a_card_is_escaped():
    "Markup in any text field (tokens, a band label, neighbours' tokens) reaches the card escaped, never raw."
    evil = "<img src=x onerror=alert(1)>"
    snip = Snippet(0, 1, [evil, " ok"], [1.0, 0.0], 0, 1.0)
    step = AblationStep(3, evil, evil, 0.5, up=[(evil, 1.0)], down=[(evil, 0.5)])
    d = LatentData(5, 10, 2, 0.2, 1.0, 1.0, top=[snip], quantiles=[(evil, [snip])], hist_edges=[0.0, 1.0],
                   hist_counts=[2], promoted=[(evil, 1.0)], suppressed=[(evil, -1.0)], neighbors=[(1, 0.5)],
                   ablation=[step])
    card = latent_card_html(d)
    assert evil not in card and "<img" not in card and card.count("&lt;img src=x onerror=alert(1)&gt;") == 9


def test_opening_shows_a_busy_line_while_it_computes_then_clears_it(inspector):
    seen = []
    inspector.busy.observe(lambda ch: seen.append(ch["new"]), names="value")
    inspector.show_latent(9)
    assert len(seen) == 2 and "opening latent 9" in seen[0] and seen[1] == "" and inspector.busy.value == ""
    assert inspector.data.ablation is None, "opening does not run the model: ablation effects are on demand"


def test_ablation_effects_on_demand(inspector):
    inspector.show_latent(5)
    inspector.ablate.value = True
    try:
        assert inspector.data.ablation and "Ablated at its top activation" in inspector.card.value
        inspector.show_latent(7)
        assert inspector.data.latent == 7 and inspector.data.ablation is not None
    finally: inspector.ablate.value = False


def _css_px(value: str) -> int:
    assert value.endswith("px"), value
    return int(value[:-2])


def test_the_card_and_histogram_wrap_instead_of_scrolling(inspector):
    "From a 900 px window (an output area about 800 px wide) up, the row wraps: no child is wider than 800 px."
    row = next(c for c in inspector.widget.children if inspector.card in getattr(c, "children", ()))
    assert row.layout.flex_flow == "row wrap" and row.layout.width == "100%"
    assert inspector.plot in row.children
    assert _css_px(inspector.card.layout.min_width) <= 800 and _css_px(inspector.plot.layout.width) <= 800
    assert inspector.figure.layout.width <= _css_px(inspector.plot.layout.width)
    assert _css_px(inspector.card.layout.max_width) + _css_px(inspector.plot.layout.width) < 1600
    controls = [c for c in inspector.widget.children if isinstance(c, widgets.Box) and not isinstance(c, widgets.VBox)]
    assert controls and all(c.layout.flex_flow == "row wrap" for c in controls)


def test_steering_from_the_inspector(inspector):
    inspector.show_latent(7)
    plain, steered = inspector.steer("We the People", 3.0)
    assert plain.kl == 0 and steered.kl > 0 and steered.latent_act > plain.latent_act
    assert "without" in inspector.steer_view.value and inspector.steer_message.value == ""
    assert inspector.strength.max == pytest.approx(max(1.0, round(4 * inspector.data.max_act, 1)))
    clamped = inspector.steer("We the People", 2.0, "clamp")[1]
    assert clamped.latent_act == pytest.approx(2.0, abs=1e-3)


@pytest.mark.parametrize(("prompt", "strength", "latent", "says"), [
    ("", 1.0, None, "the prompt is empty"), ("   ", 1.0, None, "the prompt is empty"),
    ("ab" * 100, 1.0, None, "more than the model's context of 128: shorten it"),
    ("We the People", 1.0, 128, "out of range: this SAE has latents 0 .. 127"),
    ("We the People", 1e5, None, "is absurd here"), ("We the People", float("nan"), None, "is absurd here"),
    ("We the People", 1.0, "7", "a latent is an integer index")])
def test_bad_steering_requests_are_messages_in_the_panel(inspector, prompt, strength, latent, says):
    inspector.steer("We the People", 1.0)
    assert inspector.steer(prompt, strength, latent=latent) is None
    assert says in inspector.steer_message.value and inspector.steer_view.value == "" and inspector.busy.value == ""
