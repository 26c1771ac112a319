"""Writing XML text fast: escaping, and elements on lines of their own.

The clinical data are written as text built from pieces worked out once per item (a
value's ``<ItemData ItemOID="..."`` start) rather than as element objects: this keeps
the work per value to a dictionary look-up, a check for characters to escape and a
string join.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import BinaryIO, Final

_CHUNK: Final = 1 << 16


_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\n": "&#10;",
        "\r": "&#13;",
        "\t": "&#9;",
    }
)


SPECIAL = re.compile(r'[&<>"\n\r\t\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')


_UNWRITABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escaped(text: str) -> str:
    """``text`` as an XML attribute value or element text: markup characters escaped,
    line breaks and tabs as character references (so an attribute keeps them)."""
    if SPECIAL.search(text) is None:
        return text
    return _UNWRITABLE.sub("\ufffd", text).translate(_ESCAPES)


def _attributes(attributes: dict[str, str | int | None]) -> str:
    return "".join(
        f' {name}="{escaped(str(value))}"'
        for name, value in attributes.items()
        if value is not None
    )


class Out:
    """Text gathered into chunks and written to a binary file as UTF-8, with helpers
    for elements on lines of their own (``depth``: their indentation)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.raw.write("".join(self.parts).encode("utf-8"))
            self.parts.clear()
            self.size = 0

    def element(self, depth: int, name: str, **attributes: str | int | None) -> None:
        """An empty element."""
        self.write(f"{'  ' * depth}<{name}{_attributes(attributes)}/>\n")

    def open(self, depth: int, name: str, **attributes: str | int | None) -> None:
        self.write(f"{'  ' * depth}<{name}{_attributes(attributes)}>\n")

    def close(self, depth: int, name: str) -> None:
        self.write(f"{'  ' * depth}</{name}>\n")

    def text(self, depth: int, name: str, text: str, **attributes: str | int | None) -> None:
        """An element holding text."""
        self.write(f"{'  ' * depth}<{name}{_attributes(attributes)}>{escaped(text)}</{name}>\n")

    def translated(self, depth: int, name: str, text: str) -> None:
        """``<Question>``, ``<Decode>``...: one English ``TranslatedText``."""
        pad = "  " * depth
        self.write(
            f'{pad}<{name}>\n{pad}  <TranslatedText xml:lang="en">{escaped(text)}'
            f"</TranslatedText>\n{pad}</{name}>\n"
        )


def odm_datetime(text: str) -> str:
    """A timestamp of the snapshot as xs:dateTime, to the second, kept as given when it
    is not ISO 8601."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return moment.isoformat(timespec="seconds")
