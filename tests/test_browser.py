"""Exported HTML in a real browser: headless Chromium (Debian's package) with the network closed.

Checks from the DOM that every card and figure rendered, that a token made of markup stays text, and,
from Chromium's net log, that the page itself requested nothing (Chromium's own background requests,
which carry no page origin, are told apart). Skips where Chromium is missing, except under CI (CI=true).
"""
import pytest
from browser import render

from topk_sae.cli import DemoConfig, run_demo
from topk_sae.latents import LatentData, LatentIndex, Snippet, latent_data, sorted_latents
from topk_sae.widgets import write_dashboard

EVIL = "<script>alert(1)</script>"


def test_the_harness_sees_a_page_that_reaches_out(tmp_path):
    page = tmp_path / "leaky.html"
    page.write_text('<html><body><img src="http://example.com/pixel.png"><script>console.log("ran")</script></body></html>')
    dom, requests, console = render(page, tmp_path)
    assert requests == ["http://example.com/pixel.png"] and '"ran"' in console and "<body>" in dom


@pytest.fixture(scope="module")
def index(tiny_sae):
    return LatentIndex.build(tiny_sae.sae, tiny_sae.model, tiny_sae.contexts[300:400], progress=False)


def test_dashboard_renders_offline_and_escapes_tokens(index, tmp_path):
    datas = [latent_data(index, i) for i in sorted_latents(index, "density")[:6]]
    datas.append(LatentData(7, 10, 1, 0.1, 1.0, 1.0, top=[Snippet(0, 1, [EVIL, " after"], [1.0, 0.0], 0, 1.0)],
                            hist_edges=[0.0, 1.0], hist_counts=[1], promoted=[(EVIL, 1.0)], suppressed=[("x", -1.0)],
                            neighbors=[(1, 0.5)]))
    dom, requests, console = render(write_dashboard(tmp_path / "dash.html", datas, "test"), tmp_path)
    assert requests == [], f"the dashboard requested {requests}"
    assert dom.count('class="tks-card"') == 7
    assert dom.count('class="main-svg"') >= 2 * 7, "every card's histogram should have been drawn by plotly"
    assert EVIL not in dom and dom.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2
    assert "Uncaught" not in console and "Refused" not in console, console


def test_demo_report_renders_offline(tmp_path):
    run_demo(DemoConfig.tiny(out=str(tmp_path / "run")))
    dom, requests, console = render(tmp_path / "run" / "report.html", tmp_path)
    assert requests == [] and "Uncaught" not in console and "Refused" not in console
    assert dom.count('class="plotly-graph-div') >= 6 and dom.count('class="main-svg"') >= 6
    assert dom.count('class="tks-card"') >= 1, "the demo report has latent cards"
