"""Template filters and globals shared by every page."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any


def ukdate(value: date | datetime | None, with_time: bool = False) -> str:
    """Show a date unambiguously to people: ``12 Mar 2025`` (times in UTC)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        text = f"{value.day} {value:%b %Y}"
        return f"{text}, {value:%H:%M} UTC" if with_time else text
    return f"{value.day} {value:%b %Y}"


def includeme(config: Any) -> None:
    config.add_static_view("static", "bhp_ctms:static", cache_max_age=3600)
