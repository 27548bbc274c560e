"""Widget state, driven from Python: every callback's effect on the widgets, and bad input shown as a message."""
import copy

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
