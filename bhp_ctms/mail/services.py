"""Queueing and delivering email."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from typing import Any

from sqlalchemy.orm import Session
from zope.interface import implementer

from bhp_ctms.db import utcnow
from bhp_ctms.mail.interfaces import IMailer
from bhp_ctms.mail.models import OutboundEmail
from bhp_ctms.settings import Settings

log = logging.getLogger(__name__)


@implementer(IMailer)
class LogMailer:
    """Writes each message to the log: for development and tests."""

    name = "log"

    def deliver(self, sender: str, to: list[str], subject: str, body: str) -> None:
        log.info("email from %s to %s: %s\n%s", sender, ", ".join(to), subject, body)


@implementer(IMailer)
class SMTPMailer:
    """Hands each message to an SMTP server."""

    name = "smtp"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def deliver(self, sender: str, to: list[str], subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message.set_content(body)
        with smtplib.SMTP(self.host, self.port, timeout=30) as smtp:
            smtp.send_message(message)


def mailer_from_settings(settings: Settings) -> LogMailer | SMTPMailer:
    if settings.mail_backend == "smtp":
        return SMTPMailer(settings.smtp_host, settings.smtp_port)
    return LogMailer()


def queue_email(
    db: Session,
    settings: Settings,
    *,
    kind: str,
    to: list[str],
    subject: str,
    body: str,
    study_id: int | None = None,
) -> OutboundEmail:
    """Record a message in the outbox, in the caller's transaction. Send it after the
    commit with :func:`bhp_ctms.mail.tasks.send_email` (``request.enqueue``)."""
    email = OutboundEmail(
        kind=kind,
        study_id=study_id,
        sender=settings.mail_sender,
        recipients=sorted(set(to)),
        subject=subject,
        body=body,
    )
    db.add(email)
    db.flush()
    return email


def deliver(db: Session, mailer: Any, email: OutboundEmail) -> bool:
    """Deliver one queued message unless it has been already; records the outcome.
    Returns whether it is now delivered."""
    if email.sent_at is not None:
        return True
    email.attempts += 1
    try:
        mailer.deliver(email.sender, list(email.recipients), email.subject, email.body)
    except (OSError, smtplib.SMTPException) as error:
        email.last_error = f"{type(error).__name__}: {error}"
        log.warning("could not deliver email %s: %s", email.id, email.last_error)
        return False
    email.sent_at = utcnow()
    email.last_error = ""
    return True
