"""Headless Chromium (Debian's package) with the network closed, for the tests that open HTML: the exported
dashboard and report (test_browser.py) and the docs site (test_docs.py).

`render` returns the DOM after scripts ran, what the page itself requested (from Chromium's net log; Chromium's own
background requests, which carry no page origin, are told apart) and the console log. Skips where Chromium is
missing, except under CI (CI=true).
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

def missing(what: str, install: str):
    "A browser test's tool is missing: under CI (CI=true) the test fails, elsewhere it skips; both say how to install."
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must have {what} for the browser tests: {install}")
    pytest.skip(f"no {what} here: {install}")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name): return path
    missing("Chromium", ".ci/run installs it (apt-get install -y chromium)")


def render(page: Path, tmp: Path, width: int = 1280) -> tuple[str, list[str], str]:
    "The DOM after scripts ran in a `width`-pixel window, the URLs the page itself requested, and the console log."
    net = tmp / f"{page.stem}-{width}-net.json"
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-sync",
            "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND", f"--log-net-log={net}", "--enable-logging=stderr", "--v=0",
            f"--window-size={width},900", "--virtual-time-budget=15000", "--dump-dom", page.resolve().as_uri()]
    out = subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)  # the net log says what ran
    log = json.loads(net.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    jobs = [e.get("params", {}) for e in log["events"] if e["type"] == start]
    page_requests = [p["url"] for p in jobs if "url" in p and p.get("initiator") != "not an origin"
                     and not p["url"].startswith(("file:", "data:", "blob:"))]
    console = "\n".join(l for l in out.stderr.splitlines() if "CONSOLE" in l)
    return out.stdout, page_requests, console
