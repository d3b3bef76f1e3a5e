"""A Markdown extension that shows docstring examples (``>>>`` sessions) as highlighted code.

Docstrings keep plain doctest sessions, as pytest's doctest mode reads them; Markdown alone would
take their ``>`` marks for a quotation and run the lines together. A session is a ``>>>`` line, its
``...`` continuations and the output lines after it, up to a blank line.
"""
import re

from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor

_PROMPT = re.compile(r"^(\s*)>>> ")
_FENCE = re.compile(r"^\s*(```|~~~)")


class _DoctestBlocks(Preprocessor):
    def run(self, lines):
        out, fenced, i = [], False, 0
        while i < len(lines):
            line = lines[i]
            if _FENCE.match(line):
                fenced = not fenced
            start = None if fenced else _PROMPT.match(line)
            if start is None:
                out.append(line)
                i += 1
                continue
            indent = start.group(1)
            session = []
            while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
                session.append(lines[i][len(indent):])
                i += 1
            if out and out[-1].strip():
                out.append("")  # a fence must start its own block
            out += [indent + "```pycon", *(indent + s for s in session), indent + "```", ""]
        return out


class DoctestBlocks(Extension):
    """Register the preprocessor (before the other block processors see the ``>`` lines)."""

    def extendMarkdown(self, md):
        md.preprocessors.register(_DoctestBlocks(md), "needle_doctest_blocks", 29)
