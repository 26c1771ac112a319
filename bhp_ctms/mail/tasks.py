"""Delivering queued email in the background."""

from __future__ import annotations

from typing import Any

from bhp_ctms.mail.interfaces import IMailer
from bhp_ctms.mail.models import OutboundEmail
from bhp_ctms.mail.services import deliver
from bhp_ctms.tasks import task


@task()
def send_email(request: Any, email_id: int) -> bool:
    """Deliver one message from the outbox; a message already delivered is not sent
    again (the task may run twice). A failure is recorded on the message, which the
    outbox keeps undelivered. Returns whether it is delivered."""
    email = request.db.get(OutboundEmail, email_id)
    if email is None:
        return False
    return deliver(request.db, request.registry.getUtility(IMailer), email)
