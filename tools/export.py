"""`nbdev_export`, with each module's `__all__` kept within 120 columns.

nbdev wraps the list of names at 120 columns and only then prefixes `__all__ = `, so the first line reaches 130. This
runs nbdev's own exporter with the wrap narrowed by that prefix; everything else is nbdev's. `make export` and
tools/check_clean.sh call it instead of the `nbdev_export` command.
"""
import textwrap

import nbdev.maker
from nbdev.doclinks import nbdev_export

PREFIX = len("__all__ = ")


class _AllWrapper(textwrap.TextWrapper):
    "nbdev's wrapper of the `__all__` list, narrowed so that the prefixed first line fits the same width."
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "width": kwargs.get("width", 70) - PREFIX})


if __name__ == "__main__":
    nbdev.maker.TextWrapper = _AllWrapper
    nbdev_export()
