"""Markdown as users write it, rendered to HTML that is safe to show anywhere."""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt

# Raw HTML in the source is shown as text; nh3 is the second wall.
_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable("table")
_TAGS = {"p", "br", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a", "h1",
         "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody", "tr", "th", "td", "del"}


def render(text: str) -> str:
    html = _md.render(text or "")
    return nh3.clean(html, tags=_TAGS, attributes={"a": {"href", "title"}},
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow")


_TAG = re.compile(r"<[^>]+>")


def plain(html: str) -> str:
    """The text of rendered HTML, for search and snippets."""
    import html as html_lib

    return " ".join(html_lib.unescape(_TAG.sub(" ", html or "")).split())
