"""Quarto's post-render step for the nbdev docs (`nbs/_quarto.yml`: `post-render`), run by `nbdev_docs`,
`nbdev_readme` and `nbdev_preview` in `_proc/` after Quarto has written its output to `_docs/`.

1. README.md: `nbdev_readme` (which `nbdev_docs` runs) renders nbs/index.ipynb with Quarto's gfm writer into
   `_docs/README.md`, then moves it over the repository's README.md. That text is not what tools/make_readme.py writes
   (`make export`, checked by tools/check_clean.sh): pandoc re-wraps paragraphs, re-spaces tables and escapes
   characters. This step replaces it with make_readme's text before nbdev moves it, so both agree.
2. No CDN: Quarto puts require.js and jQuery from cdnjs.cloudflare.com in the head of every page with an HTML output
   (a DataFrame, a figure), for "JavaScript widgets" that might want them. No output on this site uses either (plotly
   figures load the site's own assets/plotly.min.js; widgets are a note, topk_sae.docsite), so the tags go.

Only the standard library: Quarto runs this with whichever Python it finds.
"""
import importlib.util
import os
import re
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
CDN = r'<script src="https://cdnjs\.cloudflare\.com/ajax/libs/(?:require\.js|jquery)/[^"]*"[^>]*></script>'
DEFINE_JQUERY = re.escape('<script type="application/javascript">'
                          "define('jquery', [],function() {return window.jQuery;})</script>")
CDN_SCRIPTS = re.compile(rf"[ \t]*(?:{CDN}|{DEFINE_JQUERY})\n?")


def readme(out_dir: Path) -> bool:
    "Put make_readme's text in the README.md Quarto rendered into `out_dir`, if it rendered one."
    target = out_dir / "README.md"
    if not target.exists(): return False
    spec = importlib.util.spec_from_file_location("make_readme", TOOLS / "make_readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    target.write_text(mod.readme_text(), encoding="utf-8")
    return True


def strip_cdn(page: Path) -> bool:
    "Remove Quarto's require.js / jQuery CDN tags from an HTML page; True if there were any."
    text = page.read_text(encoding="utf-8")
    new = CDN_SCRIPTS.sub("", text)
    if new != text: page.write_text(new, encoding="utf-8")
    return new != text


def main() -> None:
    out_dir = Path(os.environ.get("QUARTO_PROJECT_OUTPUT_DIR", "_docs"))
    files = [Path(f) for f in os.environ.get("QUARTO_PROJECT_OUTPUT_FILES", "").splitlines() if f.strip()]
    pages = [f for f in files if f.suffix == ".html"] or sorted(out_dir.rglob("*.html"))
    stripped = sum(strip_cdn(p) for p in pages if p.exists())
    print(f"quarto_post: {stripped} of {len(pages)} pages without CDN scripts"
          + ("; README.md from tools/make_readme.py" if readme(out_dir) else ""))


if __name__ == "__main__":
    main()
