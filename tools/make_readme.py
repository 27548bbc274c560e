"""Write README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which these machines cannot install).

Markdown cells are copied; code cells become fenced Python with nbdev directives removed (`#| hide`
cells are skipped); stored text outputs follow their cell. Deterministic: the same notebook always
gives the same README, so CI can check that README.md is up to date. Where Quarto is installed, `nbdev_docs` and
`nbdev_readme` render README.md with Quarto's gfm writer; tools/quarto_post.py (the Quarto project's post-render step)
puts this script's text in its place, so the README is the same whichever wrote it.
"""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _text(src) -> str:
    return "".join(src) if isinstance(src, list) else src


def cell_markdown(cell: dict) -> str:
    src = _text(cell["source"]).strip("\n")
    if cell["cell_type"] == "markdown": return src
    lines = src.splitlines()
    if any(l.strip() in ("#| hide", "#|hide") for l in lines): return ""
    code = "\n".join(l for l in lines if not l.lstrip().startswith("#|")).strip("\n")
    out = [f"```python\n{code}\n```"] if code else []
    for o in cell.get("outputs", []):
        text = _text(o.get("text", "")) or _text(o.get("data", {}).get("text/plain", ""))
        if text.strip(): out.append(f"```\n{text.rstrip()}\n```")
    return "\n\n".join(out)


def readme_text(index: Path = ROOT / "nbs" / "index.ipynb") -> str:
    "The README for the notebook `index`."
    nb = json.loads(index.read_text(encoding="utf-8"))
    body = "\n\n".join(md for md in map(cell_markdown, nb["cells"]) if md)
    header = "<!-- Generated from nbs/index.ipynb by tools/make_readme.py (make export). Do not edit. -->\n\n"
    return header + body + "\n"


def main(out: Path = ROOT / "README.md") -> None:
    out.write_text(readme_text(), encoding="utf-8")


if __name__ == "__main__":
    main()
