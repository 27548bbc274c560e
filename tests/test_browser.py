"""Exported HTML in a real browser: headless Chromium (Debian's package) with the network closed.

Checks from the DOM that every card and figure rendered, that a token made of markup stays text, and,
from Chromium's net log, that the page itself requested nothing (Chromium's own background requests,
which carry no page origin, are told apart). Skips where Chromium is missing, except under CI (CI=true).
"""
import json, os, shutil, subprocess
from pathlib import Path

import pytest
import torch

from topk_sae.activations import harvest
from topk_sae.cli import DemoConfig, run_demo
from topk_sae.data import SOTU_SLICE, load_corpus, make_contexts
from topk_sae.inspect import LatentData, LatentIndex, Snippet, latent_data, sorted_latents
from topk_sae.model import SAEConfig, TopKSAE
from topk_sae.train import TrainConfig, train
from topk_sae.widgets import write_dashboard

EVIL = "<script>alert(1)</script>"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name): return path
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("CI must have Chromium for the browser tests: .ci/run installs it (apt-get install -y chromium)")
    pytest.skip("no Chromium here: `apt-get install chromium` to run the browser tests")


def render(page: Path, tmp: Path) -> tuple[str, list[str], str]:
    "The DOM after scripts ran, the URLs the page itself requested, and the browser's console log."
    net = tmp / f"{page.stem}-net.json"
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND", f"--log-net-log={net}", "--enable-logging=stderr", "--v=0",
            "--virtual-time-budget=15000", "--dump-dom", page.resolve().as_uri()]
    out = subprocess.run(args, capture_output=True, text=True, timeout=180)
    log = json.loads(net.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    jobs = [e.get("params", {}) for e in log["events"] if e["type"] == start]
    page_requests = [p["url"] for p in jobs if "url" in p and p.get("initiator") != "not an origin"
                     and not p["url"].startswith(("file:", "data:", "blob:"))]
    console = "\n".join(l for l in out.stderr.splitlines() if "CONSOLE" in l)
    return out.stdout, page_requests, console


def test_the_harness_sees_a_page_that_reaches_out(tmp_path):
    page = tmp_path / "leaky.html"
    page.write_text('<html><body><img src="http://example.com/pixel.png"><script>console.log("ran")</script></body></html>')
    dom, requests, console = render(page, tmp_path)
    assert requests == ["http://example.com/pixel.png"] and '"ran"' in console and "<body>" in dom


@pytest.fixture(scope="module")
def index(tiny_model):
    hook = "blocks.0.hook_resid_post"
    ctx = make_contexts(load_corpus(SOTU_SLICE), tiny_model.tokenizer, ctx_len=32, progress=False)
    sae = train(TopKSAE(SAEConfig(d_model=64, n_latents=128, k=6, hook=hook)), harvest(tiny_model, hook, ctx[:300], progress=False),
                TrainConfig.tiny(n_tokens=16_000, lr=3e-3)).sae
    return LatentIndex.build(sae, tiny_model, ctx[300:400], progress=False)


def test_dashboard_renders_offline_and_escapes_tokens(index, tmp_path):
    datas = [latent_data(index, i) for i in sorted_latents(index, "density")[:6]]
    datas.append(LatentData(7, 10, 1, 0.1, 1.0, 1.0, top=[Snippet(0, 1, [EVIL, " after"], [1.0, 0.0], 0, 1.0)],
                            hist_edges=[0.0, 1.0], hist_counts=[1], promoted=[(EVIL, 1.0)], suppressed=[("x", -1.0)], neighbors=[(1, 0.5)]))
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
