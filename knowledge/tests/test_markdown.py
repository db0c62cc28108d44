import pytest

from knowledge.rendering import markdown_to_text, render_markdown

NASTY = [
    "<script>alert(1)</script>hello",
    '<img src="x.png" onerror="alert(1)">',
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    "![x](javascript:alert(1))",
    '<img src="data:image/svg+xml;base64,PHN2Zz4=">',
    '<iframe src="https://evil.example"></iframe>',
    "<style>body{display:none}</style>",
    '<p onclick="alert(1)" style="color:red">x</p>',
    "<svg><script>alert(1)</script></svg>",
    '<form action="https://evil.example"><input name="a"></form>',
    "<object data='x'></object><embed src='x'>",
    '<a href="vbscript:msgbox(1)">x</a>',
]


@pytest.mark.parametrize("source", NASTY)
def test_dangerous_markup_is_removed(source):
    html = render_markdown(source).lower()
    for needle in (
        "<script",
        "javascript:",
        "vbscript:",
        "onerror",
        "onclick",
        "<iframe",
        "<style",
        "style=",
        "data:",
        "<form",
        "<input",
        "<object",
        "<embed",
        "alert(1)</",
    ):
        assert needle not in html, (needle, html)


def test_markdown_features_survive():
    html = render_markdown(
        "# Title\n\nSome **bold** and *em* text with [a link](https://example.com).\n\n"
        "- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode <here>\n```\n"
    )
    assert "<h2>Title</h2>" in html  # h1 is the page's own title
    assert "<strong>bold</strong>" in html and "<em>em</em>" in html
    assert 'href="https://example.com"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert "<li>one</li>" in html and "<table>" in html and "<td>1</td>" in html
    assert "code &lt;here&gt;" in html


def test_plain_text_keeps_paragraphs_and_drops_markup():
    text = markdown_to_text(
        "Hello **there** & <b>you</b>.\n\n- first\n- second\n\n<script>bad()</script>"
    )
    assert text.splitlines() == ["Hello there & you.", "first", "second"]


def test_empty_body():
    assert render_markdown("") == ""
    assert markdown_to_text("") == ""
