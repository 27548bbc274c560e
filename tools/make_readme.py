"""Write README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which these machines cannot install).

Markdown cells are copied; code cells become fenced Python with nbdev directives removed (`#| hide`
cells are skipped); stored text outputs follow their cell. Deterministic: the same notebook always
gives the same README, so CI can check that README.md is up to date.
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


def main() -> None:
    nb = json.loads((ROOT / "nbs" / "index.ipynb").read_text(encoding="utf-8"))
    body = "\n\n".join(md for md in map(cell_markdown, nb["cells"]) if md)
    header = "<!-- Generated from nbs/index.ipynb by tools/make_readme.py (make export). Do not edit. -->\n\n"
    (ROOT / "README.md").write_text(header + body + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
