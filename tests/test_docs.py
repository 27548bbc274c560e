"""The docs site, offline: every notebook is a page, every page renders in headless Chromium without the network,
every local link resolves, and every exported symbol is documented on its page with a lesson cell.

`make docs` (which `make test` runs first) builds `_site/` with tools/build_docs.py; where it is missing, the
fixture builds it.
"""
import importlib
import inspect
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tokenize
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from browser import render

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
NOTEBOOKS = sorted(str(p.relative_to(NBS)) for p in NBS.rglob("*.ipynb")
                   if not any(part.startswith((".", "_")) for part in p.relative_to(NBS).parts))


@pytest.fixture(scope="module")
def site() -> Path:
    site = Path(os.environ.get("DOCS_SITE", ROOT / "_site"))
    if not (site / "pages.json").exists():
        build = [sys.executable, str(ROOT / "tools" / "build_docs.py"), "--out", str(site)]
        subprocess.run(build, check=True, cwd=ROOT)
    return site


@pytest.fixture(scope="module")
def pages(site) -> dict:
    return {p["source"]: p for p in json.loads((site / "pages.json").read_text())["pages"]}


def test_every_notebook_is_a_page(pages):
    "The sidebar's globs reach every notebook (a new one needs no edit to sidebar.yml), each once."
    assert sorted(pages) == sorted(f"nbs/{n}" for n in NOTEBOOKS)


def test_the_sidebar_has_the_four_sections(site):
    sections = [t for t, _ in json.loads((site / "pages.json").read_text())["sections"]]
    assert sections == ["Get started", "Tutorials", "Explanations", "API"]


def test_nbdev_yml_is_what_nbdev_writes():
    "`nbdev_docs` rewrites nbs/nbdev.yml from settings.ini; the committed file must be that, or builds dirty git."
    from nbdev.config import get_config
    from nbdev.quarto import _nbdev_yml
    cfg = get_config()
    vals = {k: cfg[k] for k in ["title", "description", "branch", "git_url", "doc_host", "doc_baseurl"]}
    assert (NBS / "nbdev.yml").read_text() == _nbdev_yml.format(doc_path=cfg.doc_path.name, **vals)
    assert cfg.custom_sidebar, "settings.ini needs custom_sidebar = True, or nbdev_docs overwrites nbs/sidebar.yml"


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.ids = [], set()
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a: self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key): self.refs.append(a[key])


def parse(path: Path) -> Links:
    p = Links()
    p.feed(path.read_text())
    return p


def test_local_links_resolve(site, pages):
    "Every relative link and asset exists, and a link to a heading or symbol finds its id on the target page."
    broken = []
    for page in pages.values():
        for ref in parse(site / page["file"]).refs:
            if re.match(r"^[a-z]+:", ref): continue
            target, _, frag = ref.partition("#")
            dest = (site / page["file"]).parent / target if target else site / page["file"]
            if not dest.resolve().exists(): broken.append(f"{page['file']}: {ref}")
            elif frag and dest.suffix == ".html" and frag not in parse(dest).ids:
                broken.append(f"{page['file']}: {ref} (no such id)")
    assert not broken, broken


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_page_renders_offline(notebook, site, pages, tmp_path):
    page = pages[f"nbs/{notebook}"]
    dom, requests, console = render(site / page["file"], tmp_path)
    assert requests == [], f"{page['file']} requested {requests}"
    assert "Uncaught" not in console and "Failed to load" not in console, console
    main = re.search(r'<main class="content">(.*)</main>', dom, re.DOTALL)
    assert main, f"{page['file']} has no content"
    text = re.sub(r"<[^>]+>", " ", main.group(1))
    assert page["title"].split()[0] in text and len(text.split()) > 100, f"{page['file']} is (nearly) blank"
    assert dom.count('class="main-svg"') >= page["plotly_figures"], "a plotly figure was not drawn"


def test_a_page_with_figures_draws_them(pages):
    "The check above would pass vacuously if no page had a figure: the API page of the report module has some."
    assert pages["nbs/11_report.ipynb"]["plotly_figures"] >= 2


# Every exported symbol is documented on its page with a lesson cell.


def directives(src: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^#\|\s*([\w-]+)", src, re.MULTILINE)}


def code_names(src: str) -> set[str]:
    "The Python names a cell's code uses (not its comments or strings)."
    src = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))
    try: return {t.string for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.NAME}
    except (tokenize.TokenError, SyntaxError): return set(re.findall(r"\w+", src))


def module_notebooks() -> list[tuple[str, str]]:
    out = []
    for nb in sorted(NBS.glob("[0-9]*.ipynb")):
        src = "\n".join(c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code")
        if m := re.search(r"^#\|\s*default_exp\s+(\S+)", src, re.MULTILINE): out.append((nb.stem, m.group(1)))
    return out


@pytest.mark.parametrize("stem,module", module_notebooks())
def test_exported_symbols_are_documented_with_a_lesson(stem, module):
    """Functions and classes have their own docstring (not the one dataclasses and NamedTuples invent); constants are
    named in the page's prose or commented where they are set; and a visible, non-exported cell uses every name."""
    mod = importlib.import_module(f"topk_sae.{module}")
    nb = nbformat.read(NBS / f"{stem}.ipynb", as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    exported = "\n".join(src for src in code if directives(src) & {"export", "exports"})
    not_lessons = {"export", "exports", "exporti", "hide", "default_exp"}
    lessons = set().union(*(code_names(src) for src in code if not directives(src) & not_lessons))
    undocumented, no_lesson = [], []
    for name in mod.__all__:
        obj = getattr(mod, name)
        defined = inspect.isfunction(obj) or inspect.isclass(obj)
        if defined and getattr(obj, "__module__", mod.__name__) != mod.__name__:
            continue  # re-exported: documented where it is defined
        if defined:
            doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
            if not doc or doc.startswith(f"{name}("): undocumented.append(name)
        elif f"`{name}`" not in prose and not re.search(rf"^{name}\b[^=\n]*=.*#", exported, re.MULTILINE):
            undocumented.append(name)
        if name not in lessons: no_lesson.append(name)
    assert not undocumented + no_lesson, f"{stem}: no doc {undocumented}, no lesson cell {no_lesson}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_records_its_kernel(name):
    "Opened in Jupyter, a notebook starts its Python kernel without asking which one."
    spec = nbformat.read(NBS / name, as_version=4).metadata.get("kernelspec", {})
    assert spec.get("name") == "python3" and spec.get("language") == "python", f"{name}: kernelspec {spec}"


def test_library_lines_fit_120_columns():
    "Every line of topk_sae/ is at most 120 columns, but for the first line of the `__all__` nbdev writes itself."
    long = []
    for f in sorted((ROOT / "topk_sae").glob("*.py")):
        if f.name == "_modidx.py": continue
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if len(line) > 120 and not line.startswith("__all__ = ["): long.append(f"{f.name}:{i} ({len(line)})")
    assert not long, f"lines over 120 columns (fix them in the notebooks, then make export): {long}"


# The Quarto site (`nbdev_docs`): saved plotly figures gain an offline text/html form (topk_sae.docsite, settings.ini
# `procs`), tools/quarto_post.py keeps README.md as make_readme writes it and takes Quarto's CDN tags out.

QUARTO_DOCS = Path(os.environ.get("QUARTO_DOCS", ROOT / "_docs"))
FIGURE_DIV = re.compile(r'<div id="plotly-figure-\d+" class="plotly-graph-div"')


def test_processed_notebooks_carry_offline_figures(site):
    "Every plotly output nbdev processes for the docs (`_proc/`, which the site fixture writes) gains the light HTML."
    from topk_sae.docsite import PLOTLY_JS, PLOTLY_MIME
    figures = 0
    for nb_path in sorted((ROOT / "_proc").rglob("*.ipynb")):
        for cell in nbformat.read(nb_path, as_version=4).cells:
            for out in cell.get("outputs", []):
                if PLOTLY_MIME not in out.get("data", {}): continue
                figures += 1
                page = out["data"].get("text/html", "")
                assert FIGURE_DIV.search(page) and PLOTLY_JS in page, f"{nb_path.name}: a figure without offline HTML"
                srcs = re.findall(r'src\s*=\s*"([^"]*)"', page)
                assert srcs and all(s.endswith(PLOTLY_JS) and "//" not in s for s in srcs), f"{nb_path.name}: {srcs}"
                assert len(page) < 200_000, f"{nb_path.name}: plotly.js inlined in a figure"
    assert figures >= 16, f"only {figures} plotly outputs in _proc/"
    assert (ROOT / "_proc" / PLOTLY_JS).stat().st_size > 1_000_000


def test_quarto_config_ships_plotly_and_runs_the_post_step():
    "_quarto.yml lists the processor's plotly.js, runs tools/quarto_post.py from _proc/, and drops the web font."
    import yaml

    from topk_sae.docsite import PLOTLY_JS
    cfg = yaml.safe_load((NBS / "_quarto.yml").read_text())
    assert PLOTLY_JS in cfg["project"]["resources"]
    assert (ROOT / "_proc" / cfg["project"]["post-render"]).resolve() == ROOT / "tools" / "quarto_post.py"
    theme = cfg["format"]["html"]["theme"]
    assert "theme.scss" in theme and "$web-font-path: false;" in (NBS / "theme.scss").read_text()


def quarto_post():
    sys.path.insert(0, str(ROOT / "tools"))
    try: return importlib.import_module("quarto_post"), importlib.import_module("make_readme")
    finally: sys.path.pop(0)


def test_quarto_post_puts_make_readmes_text_in_place(tmp_path):
    "nbdev_readme's Quarto-rendered README is replaced by make_readme's before nbdev moves it over README.md."
    post, make_readme = quarto_post()
    assert not post.readme(tmp_path)
    (tmp_path / "README.md").write_text("topk_sae\n========\n\nre-wrapped by pandoc\n")
    assert post.readme(tmp_path)
    assert (tmp_path / "README.md").read_text() == make_readme.readme_text() == (ROOT / "README.md").read_text()


def test_quarto_post_strips_the_cdn_tags(tmp_path):
    "The three tags Quarto 1.5 writes for 'JavaScript widgets' (src/core/jupyter/widgets.ts) go; nothing else does."
    post, _ = quarto_post()
    cdn = "https://cdnjs.cloudflare.com/ajax/libs"
    head = (f'<script src="{cdn}/require.js/2.3.6/require.min.js" integrity="sha512-c3" crossorigin="anonymous">'
            f'</script>\n<script src="{cdn}/jquery/3.5.1/jquery.min.js" integrity="sha512-bL" crossorigin="anonymous" '
            'data-relocate-top="true"></script>\n<script type="application/javascript">'
            "define('jquery', [],function() {return window.jQuery;})</script>\n")
    page = tmp_path / "p.html"
    page.write_text(f"<head>\n{head}<script src=\"site_libs/quarto.js\"></script>\n</head>")
    assert post.strip_cdn(page) and not post.strip_cdn(page)
    assert page.read_text() == '<head>\n<script src="site_libs/quarto.js"></script>\n</head>'


def quarto_pages() -> list[Path]:
    if not (QUARTO_DOCS / "index.html").exists() or not (QUARTO_DOCS / "site_libs").exists():
        pytest.skip(f"no Quarto site in {QUARTO_DOCS}: build one with nbdev_docs (Quarto on PATH) to check it")
    return sorted(QUARTO_DOCS.rglob("*.html"))


def test_quarto_site_loads_nothing_from_the_network():
    "No page of the nbdev_docs site, nor its stylesheets, names a script, stylesheet or font on another host."
    tag = r'<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)="(?:https?:)?//'
    external = re.compile(rf'{tag}|@import\s+url\(["\']?https?:')
    files = quarto_pages() + sorted((QUARTO_DOCS / "site_libs").rglob("*.css"))
    bad = [str(f.relative_to(QUARTO_DOCS)) for f in files if external.search(f.read_text(encoding="utf-8"))]
    assert not bad, f"pages or stylesheets with a network dependency: {bad}"


def test_quarto_site_draws_every_figure_offline(tmp_path):
    "Each page of the nbdev_docs site with plotly outputs draws every one in Chromium, with no request off the page."
    pages = {p: len(FIGURE_DIV.findall(p.read_text(encoding="utf-8"))) for p in quarto_pages()}
    pages = {p: n for p, n in pages.items() if n}
    assert sum(pages.values()) >= 16, f"only {sum(pages.values())} figures on the Quarto site"
    for page, n in pages.items():
        dom, requests, console = render(page, tmp_path)
        assert requests == [], f"{page.name} requested {requests}"
        assert "Unable to display output for mime type(s): application/vnd.plotly" not in dom
        assert dom.count("js-plotly-plot") == n and "Uncaught" not in console, f"{page.name}: {n} figures, {console}"


# Search in the `make docs` site: tools/build_docs.py writes search.json (and assets/search-index.js, the same index
# as a script, which file:// pages can load); tools/docs_search.js is the box in the sidebar.


def test_search_index_has_titles_headings_and_docstrings(site):
    index = json.loads((site / "search.json").read_text())
    by_url = {e["u"]: e for e in index}
    assert by_url["metrics.html"]["k"] == "page" and by_url["metrics.html"]["t"] == "Metrics on activations"
    assert by_url["metrics.html#fvu"]["k"] == "symbol" and "variance unexplained" in by_url["metrics.html#fvu"]["s"]
    assert any(e["k"] == "heading" and e["u"].startswith("tutorials/") for e in index)
    assert (site / "assets" / "search-index.js").read_text().startswith("window.SITE_SEARCH = [")
    assert len((site / "search.json").read_bytes()) < 500_000, "the search index should stay small"


def chrome(tmp_path):
    "A headless Chromium driven by selenium (chromedriver from Debian's chromium-driver), with the network closed."
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is needed to type into the search box")
    from browser import chromium
    binary, driver = chromium(), shutil.which("chromedriver")
    if not driver: pytest.skip("no chromedriver here: `apt-get install chromium-driver` to type into the docs")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND",
                f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900"):
        opts.add_argument(arg)
    return webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver))


def test_search_box_finds_a_function(site, tmp_path):
    "Typed into the box on a tutorial page, 'fvu' lists the function's own page first; Enter opens it."
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    d = chrome(tmp_path)
    try:
        d.get((site / "tutorials" / "quickstart.html").resolve().as_uri())
        d.find_element(By.ID, "site-search").send_keys("fvu")
        links = WebDriverWait(d, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results a"))
        first = links[0]
        assert first.text == "fvu" and first.get_attribute("href").endswith("/metrics.html#fvu")
        assert "variance unexplained" in d.find_element(By.CSS_SELECTOR, "#search-results li").text
        d.find_element(By.ID, "site-search").send_keys("zzqx")
        WebDriverWait(d, 20).until(lambda d: d.find_element(By.ID, "search-results").text == "No results")
        box = d.find_element(By.ID, "site-search")
        box.clear()
        box.send_keys("fvu", Keys.ENTER)
        WebDriverWait(d, 20).until(lambda d: d.current_url.endswith("/metrics.html#fvu"))
        assert d.find_element(By.ID, "fvu").text == "fvu"
        assert not [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        d.quit()
