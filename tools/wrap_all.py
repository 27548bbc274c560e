"""Re-wrap the `__all__` that nbdev_export writes into topk_sae/*.py so that every line fits 120 columns.

nbdev wraps the list at 120 characters and then prefixes its first line with `__all__ = `, so that line can
reach 130. Run after nbdev_export (`make export` and tools/check_clean.sh do): the list is the same, only its
line breaks move.
"""
import ast, re, textwrap
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "topk_sae"
ALL = re.compile(r"^__all__ = \[.*?\]\n", re.S | re.M)

def rewrap(text: str) -> str:
    m = ALL.search(text)
    if m is None: return text
    names = ast.literal_eval(m.group(0).split("=", 1)[1].strip())
    body = textwrap.fill(", ".join(repr(n) for n in names), width=120, initial_indent=" " * 11,
                         subsequent_indent=" " * 11, break_long_words=False).lstrip()
    return text[:m.start()] + f"__all__ = [{body}]\n" + text[m.end():]

if __name__ == "__main__":
    for f in sorted(LIB.glob("*.py")):
        text = f.read_text(encoding="utf-8")
        if (new := rewrap(text)) != text: f.write_text(new, encoding="utf-8")
