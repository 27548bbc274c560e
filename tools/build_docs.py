"""Build the docs site offline: nbdev's processed notebooks rendered to static HTML with nbconvert.

`nbdev_docs` renders the same site with Quarto where Quarto is installed. Here the pipeline is the same up to
the last step: `nbdev.serve.proc_nbs` (what `nbdev_proc_nbs` runs once it has Quarto) writes the processed
notebooks to `_proc/` (front matter, `show_doc` signatures, hidden and exported cells removed), then nbconvert
turns each page into HTML and this script puts it in a page with the sidebar of `nbs/sidebar.yml`.
Nothing on a page comes from the network: plotly.js is copied from the installed plotly package, widgets
show a static note, and there is no MathJax, require.js or web font.

    python tools/build_docs.py [--out _site]

writes `_site/`: one HTML file per notebook, `assets/`, `images/`, `pages.json` (what tests/test_docs.py opens) and
`search.json`, the search index (page titles, headings, and each documented symbol with its docstring) that the
search box in the sidebar (tools/docs_search.js) reads, as `assets/search-index.js`, without any network.
"""
import argparse, html, json, os, re, shutil, sys, time
from pathlib import Path

import nbformat, yaml
from bs4 import BeautifulSoup
from nbconvert import HTMLExporter
from pygments.formatters import HtmlFormatter

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
PROC = ROOT / "_proc"
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
ACTIVE = ' class="active"'


def site_url() -> str:
    "Where nbdev's doc links point (`doc_host` + `doc_baseurl` of settings.ini); rewritten to local links here."
    cfg = yaml.safe_load((NBS / "nbdev.yml").read_text())
    return cfg["website"]["site-url"].rstrip("/") + "/"


def sidebar_sections(nbs: Path = NBS) -> list[tuple[str, list[str]]]:
    "The sections of `sidebar.yml` with their notebooks, `auto` globs expanded in name order (as Quarto does)."
    out = []
    for sec in yaml.safe_load((nbs / "sidebar.yml").read_text())["website"]["sidebar"]["contents"]:
        pages = []
        for item in sec["contents"]:
            if isinstance(item, dict):
                found = sorted(str(p.relative_to(nbs)) for p in nbs.glob(item["auto"]) if not p.name.startswith(("_", ".")))
                pages += [p for p in found if p not in pages]
            elif (nbs / item).exists(): pages.append(item)
            else: raise FileNotFoundError(f"sidebar.yml lists {item}, which is not in {nbs}")
        out.append((sec["section"], pages))
    return out


def front_matter(nb) -> dict:
    "The YAML front matter nbdev puts in the first raw cell (title, description, output-file), removed from `nb`."
    if nb.cells and nb.cells[0].cell_type == "raw" and nb.cells[0].source.startswith("---"):
        return yaml.safe_load(nb.cells.pop(0).source.strip().strip("-")) or {}
    return {}


def out_file(rel: str, fm: dict) -> str:
    "A page's HTML path in the site: Quarto's `output-file` beside the notebook, or the notebook's name."
    return str(Path(rel).parent / fm["output-file"]) if fm.get("output-file") else str(Path(rel).with_suffix(".html"))


def cell_options(src: str) -> tuple[dict, str]:
    "Quarto's `#| key: value` cell options, and the source without them."
    opts, lines = {}, src.splitlines()
    while lines and (m := re.match(r"#\|\s*([\w-]+)\s*:?\s*(.*)$", lines[0])):
        opts[m.group(1)] = m.group(2).strip().lower()
        lines.pop(0)
    return opts, "\n".join(lines)


def plotly_html(fig: dict) -> str:
    "A plotly figure's JSON as a div drawn by the site's own copy of plotly.js."
    div = f"plotly-{os.urandom(6).hex()}"
    spec = json.dumps({"data": fig.get("data", []), "layout": fig.get("layout", {}), "config": {"responsive": True, "displaylogo": False}}).replace("</", "<\\/")
    return (f'<div id="{div}" class="plotly-graph-div" style="height:{fig.get("layout", {}).get("height", 450)}px;width:100%"></div>'
            f'<script>(function(){{var s={spec};Plotly.newPlot("{div}",s.data,s.layout,s.config);}})();</script>')


def static_outputs(outputs: list) -> list:
    "Outputs a static page can show: plotly JSON drawn locally, widgets as a note with their text fallback, no JavaScript."
    res = []
    for o in outputs:
        data = o.get("data", {})
        if PLOTLY in data: o.data = {"text/html": plotly_html(data[PLOTLY])}
        elif WIDGET in data:
            text = html.escape(data.get("text/plain", ""))
            o.data = {"text/html": '<div class="widget-note">An interactive widget: run the notebook in Jupyter to use it.'
                                   + (f"<pre>{text}</pre>" if text else "") + "</div>"}
        elif "application/javascript" in data: continue
        res.append(o)
    return res


def strip_link_attrs(md: str) -> str:
    "Markdown links without Pandoc's `{target=...}` attributes, which nbconvert would print."
    return re.sub(r"\]\(([^)\s]+)\)\{[^}]*\}", r"](\1)", md)


def prepare(nb) -> None:
    "Apply the Quarto cell options nbdev leaves in `_proc/` (echo, output, include) and make outputs static."
    nb.metadata.pop("widgets", None)
    cells = []
    for c in nb.cells:
        if c.cell_type == "markdown":
            c.source = strip_link_attrs(c.source)
        if c.cell_type == "code":
            opts, c.source = cell_options(c.source)
            if opts.get("include") == "false": continue
            c.outputs = [] if opts.get("output") == "false" else static_outputs(c.outputs)
            sym = re.fullmatch(r"show_doc\(([\w.]+)\)", c.source.strip())
            for o in c.outputs:
                if "text/markdown" in o.get("data", {}):
                    md = strip_link_attrs(o.data["text/markdown"])
                    if sym and "." in sym.group(1):  # a method: titled `Class.method`, the anchor nbdev's doc links use
                        md = re.sub(rf"^(#+) {re.escape(sym.group(1).split('.')[-1])}$", rf"\1 {sym.group(1)}", md, count=1, flags=re.M)
                    o.data["text/markdown"] = md
            if opts.get("echo") == "false": c.metadata.setdefault("transient", {})["remove_source"] = True
            if not c.source.strip() and not c.outputs: continue
        cells.append(c)
    nb.cells = cells


def inline_code(text) -> str:
    "Escaped text with its `code` spans as <code> (page descriptions are one line of Markdown)."
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text)))


def pandoc_id(text: str) -> str:
    "Pandoc's (and so Quarto's) automatic identifier for a heading."
    s = re.sub(r"[^\w\s.-]", "", text.replace("¶", "").strip().lower())
    return re.sub(r"^[^a-z]+", "", re.sub(r"\s+", "-", s)) or "section"


def snippet(tag, limit: int = 120) -> str:
    "A tag's text on one line, cut at `limit` characters."
    text = " ".join(tag.get_text(" ", strip=True).split()) if tag else ""
    return text if len(text) <= limit else text[:limit - 1].rsplit(" ", 1)[0] + "…"


def search_entries(page: str, title: str, description: str, soup) -> list[dict]:
    """A page's search entries: the page (title, description), each heading with the paragraph after it, and each
    symbol `show_doc` documents with its docstring. Keys: t title, u url from the site root, p page, s text, k kind."""
    entries = [{"t": title, "u": page, "p": "", "s": snippet(BeautifulSoup(inline_code(description), "html.parser")),
                "k": "page"}]
    for h in soup.find_all(re.compile("^h[1-4]$"), id=True):
        doc = h.find_parent(class_="output_markdown")  # show_doc's output: the symbol's heading, signature, docstring
        if doc: text = next((p for p in h.find_all_next("p") if p.find_parent(class_="output_markdown") is doc), None)
        else:  # the first paragraph after the heading, if it comes before the next heading
            text = next((p for p in h.find_all_next("p", limit=3) if not p.find(class_="source-link")), None)
            if text and text.find_previous(re.compile("^h[1-6]$")) is not h: text = None
        entries.append({"t": h.get_text(" ", strip=True), "u": f"{page}#{h['id']}", "p": title, "s": snippet(text),
                        "k": "symbol" if doc else "heading"})
    return entries


class Site:
    def __init__(self, out: Path):
        self.out, self.url = out, site_url()
        self.exporter = HTMLExporter(template_name="basic", exclude_input_prompt=True, exclude_output_prompt=True)
        self.sections = sidebar_sections()
        self.pages = {}  # notebook path relative to nbs -> (output html path, front matter, notebook)
        for _, rels in self.sections:
            for rel in rels:
                nb = nbformat.read(PROC / rel, as_version=4)
                fm = front_matter(nb)
                self.pages[rel] = (out_file(rel, fm), fm, nb)
        # Quarto orders a section's pages by their front matter's `order`, then by name; so do we
        self.sections = [(t, sorted(rels, key=lambda r: float(self.pages[r][1].get("order", "inf")))) for t, rels in self.sections]
        self.by_url = {v[0]: k for k, v in self.pages.items()}

    def rel(self, page: str, target: str) -> str:
        return os.path.relpath(target, start=str(Path(page).parent) or ".")

    def convert(self, rel_nb: str):
        "A page's body as HTML, its headings with Pandoc's ids (what nbdev's doc links point at)."
        nb = self.pages[rel_nb][2]
        prepare(nb)
        soup = BeautifulSoup(self.exporter.from_notebook_node(nb)[0], "html.parser")
        for h in soup.find_all(re.compile("^h[1-6]$")):
            for a in h.find_all("a", class_="anchor-link"): a.decompose()
            h["id"] = pandoc_id(h.get_text())
        return soup

    def local(self, page: str, target: str, frag: str) -> str:
        "A link from `page` to `target#frag`; a missing anchor falls back to its class (`Cls.method` -> `cls`), else the page."
        ids = self.ids[target]
        if frag and frag not in ids: frag = frag.split(".")[0] if frag.split(".")[0] in ids else ""
        return self.rel(page, target) + (f"#{frag}" if frag else "")

    def fix_links(self, soup, page: str, rel_nb: str) -> None:
        "nbdev's absolute doc links and `.ipynb` links become links inside this site."
        for a in soup.find_all("a", href=True):
            href = a["href"]
            if href.startswith(self.url):
                target, _, frag = href[len(self.url):].partition("#")
                if target in self.by_url: a["href"] = self.local(page, target, frag)
            elif href.startswith("#"): a["href"] = self.local(page, page, href[1:])
            elif not re.match(r"^[a-z]+:", href) and re.search(r"\.ipynb(#|$)", href):
                target, _, frag = href.partition("#")
                src = os.path.normpath(str(Path(rel_nb).parent / target))
                if src in self.pages: a["href"] = self.local(page, self.pages[src][0], frag)
            if a.get_text(strip=True) == "source" and a["href"].startswith("http"): a["class"] = ["source-link"]

    def nav(self, page: str) -> str:
        items = []
        for title, rels in self.sections:
            links = "".join(f'<li><a href="{self.rel(page, self.pages[r][0])}"{ACTIVE if self.pages[r][0] == page else ""}>'
                            f'{html.escape(self.pages[r][1].get("title", r))}</a></li>' for r in rels)
            items.append(f'<li class="section"><span>{html.escape(title)}</span><ul>{links}</ul></li>')
        root = "" if "/" not in page else os.path.relpath(".", str(Path(page).parent)) + "/"
        search = (f'<div class="search"><input type="search" id="site-search" data-root="{root}" autocomplete="off" '
                  'placeholder="Search the docs" aria-label="Search the docs">'
                  '<ul id="search-results" hidden></ul></div>')
        return (f'<nav class="sidebar"><a class="site-title" href="{self.rel(page, "index.html")}">topk_sae</a>{search}'
                f'<ul>{"".join(items)}</ul></nav>')

    def write(self, rel_nb: str, soup) -> dict:
        page, fm, _ = self.pages[rel_nb]
        self.fix_links(soup, page, rel_nb)
        toc = "".join(f'<li><a href="#{h["id"]}">{html.escape(h.get_text())}</a></li>' for h in soup.find_all("h2"))
        has_plotly = bool(soup.find(class_="plotly-graph-div"))
        assets = self.rel(page, "assets")
        title = fm.get("title", Path(rel_nb).stem)
        doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} – topk_sae</title>
<link rel="stylesheet" href="{assets}/site.css"><link rel="stylesheet" href="{assets}/pygments.css"><link rel="stylesheet" href="{assets}/styles.css">
{f'<script src="{assets}/plotly.min.js"></script>' if has_plotly else ''}
<script src="{assets}/search.js" defer></script>
</head><body>
{self.nav(page)}
<main class="content"><header><h1 class="title">{html.escape(title)}</h1>
{f'<p class="description">{inline_code(fm["description"])}</p>' if fm.get("description") else ''}</header>
{soup}
</main>
<aside class="toc">{f'<p>On this page</p><ul>{toc}</ul>' if toc else ''}</aside>
</body></html>"""
        dest = self.out / page
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(doc)
        return {"file": page, "source": f"nbs/{rel_nb}", "title": title, "plotly_figures": len(soup.find_all(class_="plotly-graph-div"))}

    def assets(self) -> None:
        a = self.out / "assets"
        a.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(__file__).with_name("docs_site.css"), a / "site.css")
        shutil.copy(Path(__file__).with_name("docs_search.js"), a / "search.js")
        shutil.copy(NBS / "styles.css", a / "styles.css")
        (a / "pygments.css").write_text(HtmlFormatter(style="default").get_style_defs(".highlight"))
        import plotly
        shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", a / "plotly.min.js")
        if (NBS / "images").exists(): shutil.copytree(NBS / "images", self.out / "images", dirs_exist_ok=True)


def process(n_workers: int) -> None:
    "What `nbdev_proc_nbs` does once Quarto is there: processed notebooks in `_proc/` (only those that changed)."
    from nbdev.serve import proc_nbs
    proc_nbs(str(NBS), n_workers=n_workers)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "_site"), help="the site folder (replaced)")
    p.add_argument("--workers", type=int, default=2, help="processes for nbdev's notebook processing")
    args = p.parse_args(argv)
    start, out = time.perf_counter(), Path(args.out)
    process(args.workers)
    if out.exists(): shutil.rmtree(out)
    site = Site(out)
    site.assets()
    soups = {rel: site.convert(rel) for rel in site.pages}
    site.ids = {site.pages[rel][0]: {t["id"] for t in soup.find_all(id=True)} for rel, soup in soups.items()}
    index = [e for rel, soup in soups.items()
             for e in search_entries(site.pages[rel][0], site.pages[rel][1].get("title", Path(rel).stem),
                                     site.pages[rel][1].get("description", ""), soup)]
    (out / "search.json").write_text(json.dumps(index, ensure_ascii=False, separators=(",", ":")))
    (out / "assets" / "search-index.js").write_text(f"window.SITE_SEARCH = {json.dumps(index, ensure_ascii=False)};\n")
    pages = [site.write(rel, soup) for rel, soup in soups.items()]
    (out / "pages.json").write_text(json.dumps({"sections": [[t, [site.pages[r][0] for r in rels]] for t, rels in site.sections],
                                                "pages": pages}, indent=1))
    print(f"build_docs: {len(pages)} pages in {out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
