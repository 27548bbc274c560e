"""circuitsvis token views in the inspectors: offline, the bundle once per session, markup as text, in Chromium.

The browser test builds the page a notebook gets: the bundle's one `<script>`, a card and a prompt view, then a
card written later through `innerHTML` (what an `ipywidgets.HTML` widget does, which runs no script), and checks
from the DOM that circuitsvis drew every view and from Chromium's net log that the page requested nothing.
"""
import json
import re
import sys

import pytest
from browser import render

from topk_sae import tokenviews
from topk_sae.latents import LatentData, PromptData, Snippet
from topk_sae.tokenviews import BundleOnce, bundle_script, loader
from topk_sae.widgets import CSS, LatentInspector, PromptInspector, latent_card_html, prompt_html

EVIL = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
URL = re.compile(r"https?://")


def evil_card() -> LatentData:
    snip = Snippet(0, 2, [" We", " the", EVIL, IMG, "\n"], [0.0, 1.0, 3.0, 2.0, 0.5], 2, 3.0)
    return LatentData(7, 10, 3, 0.3, 3.0, 2.0, top=[snip, snip], quantiles=[("0.00-0.25 of max", [snip])],
                      hist_edges=[0.0, 3.0], hist_counts=[3], promoted=[(EVIL, 1.0)], suppressed=[("x", -1.0)],
                      neighbors=[(1, 0.5)])


EVIL_PROMPT = PromptData([" We", " the", EVIL], [[], [(3, 1.0), (5, 0.5)], [(3, 2.0)]])


def test_views_reference_no_url_and_keep_markup_as_text():
    views = latent_card_html(evil_card(), cv=True) + prompt_html(EVIL_PROMPT, 1, cv=True)
    assert views.count('data-cv="ColoredTokens"') == 3 and views.count('data-cv="ColoredTokensMulti"') == 1
    assert not URL.search(views), "a view must not point anywhere"
    assert re.findall(r"<(script|img)\b", views) == [], "markup in a token must reach the page escaped"


def test_the_bundle_script_loads_nothing():
    script = bundle_script()
    assert script.startswith("<script>") and script.lower().count("</script") == 1 and "<!--" not in script
    assert "sourceMappingURL" not in script and "unpkg.com" not in script
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:|(import|fetch)\s*\(\s*["'`]https?:""", script)


@pytest.fixture()
def fresh_session(monkeypatch):
    "A kernel session that has not sent the bundle yet."
    monkeypatch.setattr(tokenviews.bundle_once, "sent", False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


def _bundles(*outs) -> int:
    return sum(o["data"]["text/html"] == bundle_script() for out in outs for o in out.outputs)


def test_the_bundle_goes_to_the_page_once_per_session(tiny_sae, fresh_session):
    first = LatentInspector(tiny_sae.sae, tiny_sae.model, tiny_sae.contexts[300:330], progress=False)
    second = LatentInspector(tiny_sae.sae, tiny_sae.model, tiny_sae.contexts[300:330], index=first.index)
    prompts = PromptInspector(first)
    pages = [first.page, second.page, prompts.page]
    assert all(p in w.widget.children for p, w in zip(pages, [first, second, prompts]))
    assert _bundles(*pages) == 0, "no bundle before a front end shows a widget (a notebook run without one)"
    for page in (second.page, first.page, prompts.page, second.page):
        page._view_count = (page._view_count or 0) + 1  # what the front end reports as it draws each widget
    assert _bundles(*pages) == 1 and second.page.outputs, "the first widget drawn brings it, the others find it"
    assert 'data-cv="ColoredTokens"' in first.card.value and not URL.search(first.card.value)


def test_on_colab_every_widget_brings_the_bundle_into_its_own_frame(fresh_session, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", sys)  # any module: only its presence is looked at
    once = BundleOnce()
    assert _bundles(loader(once), loader(once)) == 2


def test_circuitsvis_draws_every_view_offline_in_chromium(tiny_sae, tmp_path):
    ins = LatentInspector(tiny_sae.sae, tiny_sae.model, tiny_sae.contexts[300:330], progress=False)
    now = CSS + latent_card_html(evil_card(), cv=True) + prompt_html(EVIL_PROMPT, 1, cv=True)
    later = ins.card.value  # the widget's own card, set as an ipywidgets.HTML sets it: innerHTML, no script run
    later_js = json.dumps(later).replace("<", "\\u003c")  # a JS string whose text holds no markup
    page = tmp_path / "views.html"
    page.write_text(f"""<!doctype html><html><head><meta charset="utf-8"></head><body>{bundle_script()}{now}
<div id="widget"></div><script>setTimeout(() => {{
  document.getElementById("widget").innerHTML = {later_js}; }}, 300);</script>
</body></html>""",
                    encoding="utf-8")
    dom, requests, console = render(page, tmp_path)
    assert requests == [], f"the page requested {requests}"
    assert "Uncaught" not in console and "kept the plain token view" not in console, console
    views = now.count('data-cv="') + later.count('data-cv="')
    assert dom.count('class="colored-tokens"') == views, "circuitsvis should have drawn every view, later ones too"
    assert dom.count('class="tks-tok') == 0, "no fallback left once drawn"
    assert re.findall(r"<(script|img)\b[^>]*>\s*alert", dom) == [] and "<img src" not in dom
    assert dom.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4, "the markup token shows as text"
