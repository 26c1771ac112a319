"""REDCap's labels, which may hold HTML, as the plain text a form file keeps."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Tags that start and end a line where REDCap shows them, and those that start and end
# a paragraph (a blank line apart); other tags only style text.
_LINES = frozenset({"div", "li", "tr", "center"})
_PARAGRAPHS = frozenset(
    {"p", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr"}
)
_UNSHOWN = frozenset({"script", "style", "head", "title"})
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _PlainText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.hidden = 0

    def _break(self, newlines: int) -> None:
        """End the line (or paragraph) unless the text already ends one."""
        ending = len(self.text) - len(self.text.rstrip(" \t\n"))
        present = self.text[len(self.text) - ending :].count("\n")
        self.text += "\n" * max(0, newlines - present)

    def _block(self, tag: str) -> None:
        if tag in _LINES:
            self._break(1)
        elif tag in _PARAGRAPHS:
            self._break(2)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _UNSHOWN:
            self.hidden += 1
        elif tag == "br":
            self.text += "\n"
        else:
            self._block(tag)
            if tag == "li":
                self.text += "- "

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.text += "\n"
        else:
            self._block(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _UNSHOWN:
            self.hidden = max(0, self.hidden - 1)
        else:
            self._block(tag)

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.text += data


def plain_text(label: str) -> str:
    """``label`` without HTML: tags dropped, entities decoded, a line break for each
    ``<br>`` and around each line (``div``, ``li``), a blank line around each paragraph
    (``p``, lists, headings), spaces collapsed within each line, and at most one blank
    line in a row."""
    text = label.replace("\r\n", "\n").replace("\r", "\n")
    if "<" in text or "&" in text:
        # The file's own line breaks count, as REDCap keeps them (nl2br).
        parser = _PlainText()
        parser.feed(text)
        parser.close()
        text = parser.text
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
