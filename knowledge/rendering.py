"""Article Markdown to safe HTML, and to plain text for search and snippets.

Python-Markdown renders (raw HTML in the source passes through it), then nh3 (the
Ammonia sanitizer) keeps only an allow-list of tags and attributes: no script or style,
no event handlers, no javascript:/data: URLs. Nothing here parses HTML by hand.
"""

from __future__ import annotations

import html
import re

import markdown
import nh3

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "dl", "dt", "em", "h2",
        "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "strong",
        "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_EXTENSIONS = ["extra", "sane_lists"]
# Block ends become line breaks before the tags go, so paragraphs stay apart as text.
_BLOCK_END = re.compile(r"</(p|li|h[1-6]|pre|blockquote|tr|dd|dt|table)>|<br\s*/?>|<hr\s*/?>", re.I)
_SPACES = re.compile(r"[ \t\r\f\v]+")


def render_markdown(source: str) -> str:
    """Sanitized HTML for an article body; safe to mark safe in a template."""
    raw = markdown.markdown(source or "", extensions=_EXTENSIONS, output_format="html")
    # A level-1 heading is the page title's; demote the article's own to h2.
    raw = re.sub(r"<(/?)h1\b", r"<\1h2", raw)
    return nh3.clean(
        raw,
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def markdown_to_text(source: str) -> str:
    """Plain text of an article body: one paragraph (or list item) per line."""
    marked = _BLOCK_END.sub(lambda m: m.group(0) + "\n", render_markdown(source))
    text = html.unescape(nh3.clean(marked, tags=set(), clean_content_tags={"script", "style"}))
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)
