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
