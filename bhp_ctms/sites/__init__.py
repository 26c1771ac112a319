"""Sites taking part in a study, and site scoping of every query."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    """Sites have no pages of their own yet; their models and scoping are used by studies."""
