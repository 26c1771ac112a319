"""The pluggable mailer."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IMailer(Interface):
    """Delivers one email; raises on failure (the outbox keeps the message)."""

    name = Attribute("A short name for the log and the outbox: log, smtp, ...")

    def deliver(sender: str, to: list[str], subject: str, body: str) -> None:  # type: ignore[misc]
        """Deliver the message, or raise."""
