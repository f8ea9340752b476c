"""The grid's notebooks as chapters of the artifacts: titles, landing pages, links between them.

Usage::

    pages = chapter_pages([("01_reproduce", "profile=a"), ("01_reproduce", "profile=b"),
                           ("02_divergence", "default")])
    # {"01_reproduce": "index.html#01_reproduce", "02_divergence": "02_divergence/default.html"}
    page = rewrite_chapter_links(exported_html, pages, "../")   # for OUT/<stem>/<slug>.html
    notebook_title(Path("notebooks/02_divergence.ipynb"))     # "Where the profiles' code paths part"

The notebooks link each other as ``02_divergence.ipynb`` (right where they sit side by
side, in notebooks/ and JupyterLab). In the artifacts a chapter is one HTML page per run,
``OUT/<stem>/<slug>.html``, so such a link is rewritten to the page a reader should land
on: the chapter's page when the grid ran it once, else its section of index.html.

The rewrite works on the exported HTML, not on the markdown: after nbconvert has rendered
the page every link is an ``<a href>``, whichever markdown form wrote it (inline,
reference-style, raw HTML, a markdown or HTML output), and ``html.parser`` locates each
start tag exactly, skipping script and style contents. Only the start tags of rewritten
links change; every other byte of the page stays as nbconvert wrote it.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import nbformat

from investigation.suite.artifacts import INDEX_NAME

NOTEBOOK_SUFFIX = ".ipynb"
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(?P<text>.+?)(?:[ \t]+#+)?[ \t]*$")


def chapter_pages(runs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Notebook stem -> where a reader lands, relative to the output directory.

    ``runs`` are the grid's (stem, slug) pairs. A notebook run once lands on its page
    ``<stem>/<slug>.html``; one run more than once lands on ``index.html#<stem>``.
    """
    pairs = sorted(set(runs))
    runs_per_stem = Counter(stem for stem, _ in pairs)
    return {
        stem: f"{stem}/{slug}.html" if runs_per_stem[stem] == 1 else f"{INDEX_NAME}#{stem}"
        for stem, slug in pairs
    }


def notebook_title(notebook: Path) -> str | None:
    """The text of the notebook's first markdown heading (``# Title``); None if it has none."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            heading = _ATX_HEADING.match(line)
            if heading is not None:
                return heading.group("text")
    return None


def rewrite_chapter_links(page: str, pages: Mapping[str, str], prefix: str) -> str:
    """``page`` with each relative ``<a href="<stem>.ipynb">`` of a grid notebook sent to ``prefix + pages[stem]``.

    A fragment (``02_divergence.ipynb#Results``) is kept when the link lands on the
    chapter's page; the index section has no such anchor, so it is dropped there.
    Links to anything else (other files, other directories, URLs) stay as they are.
    """
    finder = _ChapterLinkFinder(pages, prefix)
    finder.feed(page)
    finder.close()
    line_starts = _line_starts(page)
    pieces: list[str] = []
    done = 0
    for (line, column), old_tag, new_tag in finder.rewrites:
        start = line_starts[line - 1] + column
        if page[start : start + len(old_tag)] != old_tag:  # the parser's position did not match
            continue
        pieces += [page[done:start], new_tag]
        done = start + len(old_tag)
    pieces.append(page[done:])
    return "".join(pieces)


def _line_starts(text: str) -> list[int]:
    """Offset of each line's first character; html.parser counts lines by ``\\n`` only."""
    return [0] + [index + 1 for index, char in enumerate(text) if char == "\n"]


def _landing_href(href: str, pages: Mapping[str, str], prefix: str) -> str | None:
    """Where a link to a grid notebook should go instead; None for any other link."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or parts.query or not parts.path.endswith(NOTEBOOK_SUFFIX):
        return None
    name = posixpath.normpath(parts.path)
    target = pages.get(name.removesuffix(NOTEBOOK_SUFFIX)) if "/" not in name else None
    if target is None:
        return None
    keeps_fragment = parts.fragment and "#" not in target
    return f"{prefix}{target}#{parts.fragment}" if keeps_fragment else f"{prefix}{target}"


class _ChapterLinkFinder(HTMLParser):
    """Collects (position, old start tag, new start tag) of each ``<a>`` to rewrite."""

    def __init__(self, pages: Mapping[str, str], prefix: str) -> None:
        super().__init__(convert_charrefs=True)
        self.pages = pages
        self.prefix = prefix
        self.rewrites: list[tuple[tuple[int, int], str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._collect(tag, attrs, ">")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._collect(tag, attrs, " />")

    def _collect(self, tag: str, attrs: list[tuple[str, str | None]], end: str) -> None:
        if tag != "a":
            return
        new_attrs = [(name, self._new_value(name, value)) for name, value in attrs]
        old_tag = self.get_starttag_text()
        if new_attrs != attrs and old_tag is not None:
            self.rewrites.append((self.getpos(), old_tag, f"<a{_attributes(new_attrs)}{end}"))

    def _new_value(self, name: str, value: str | None) -> str | None:
        if name != "href" or value is None:
            return value
        return _landing_href(value, self.pages, self.prefix) or value


def _attributes(attrs: list[tuple[str, str | None]]) -> str:
    return "".join(f" {name}" if value is None else f' {name}="{html.escape(value)}"' for name, value in attrs)
