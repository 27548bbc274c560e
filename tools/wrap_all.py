"""Rewrap the `__all__` list that nbdev_export writes at the top of each module to at most 120 columns.

nbdev wraps the list's text at 120 characters and then puts `__all__ = ` in front of the first line, so that line can
reach 130 columns, past the limit ruff checks (ruff.toml). `make export` and tools/check_clean.sh run this right
after nbdev_export; it changes nothing else and running it twice changes nothing.

    python tools/wrap_all.py
"""
import re, textwrap
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "topk_sae"
WIDTH = 120  # ruff.toml's line-length


def rewrap(src: str) -> str:
    "`src` with its `__all__ = [...]` block wrapped to `WIDTH` columns the way nbdev indents it."
    m = re.search(r"^__all__ = (\[[^\]]*\])\n", src, flags=re.MULTILINE)
    if not m: return src
    names = " ".join(m.group(1).split())  # the list on one line, as nbdev wrote it before wrapping
    lines = textwrap.wrap(names, width=WIDTH, initial_indent="__all__ = ", subsequent_indent=" " * 11,
                          break_long_words=False, break_on_hyphens=False)
    return src[:m.start()] + "\n".join(lines) + "\n" + src[m.end():]


if __name__ == "__main__":
    for f in sorted(LIB.glob("*.py")):
        src = f.read_text()
        if (new := rewrap(src)) != src: f.write_text(new)
