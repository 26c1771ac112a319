"""Email: every message is recorded in the database (the outbox) in the transaction
that decides to send it, then delivered by a worker after the commit through the
configured mailer (:class:`bhp_ctms.mail.interfaces.IMailer`)."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    from bhp_ctms.mail.interfaces import IMailer
    from bhp_ctms.mail.services import mailer_from_settings

    settings = config.registry.settings["bhp_ctms"]
    config.registry.registerUtility(mailer_from_settings(settings), IMailer)
