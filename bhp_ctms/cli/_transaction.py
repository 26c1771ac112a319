"""Running a command's work inside one audited transaction."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bhp_ctms.audit.capture import use_actor
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.cli import CommandContext


def cli_actor() -> AuditActor:
    """The operator at the terminal; the audit trail names the operating-system user."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return AuditActor(user_id=None, name=f"ctms command ({who})", role="operator")


@contextmanager
def command_transaction(context: CommandContext) -> Iterator[Any]:
    """Yield a request whose ``db`` commits when the block ends without error."""
    request = context.env["request"]
    with request.tm:
        use_actor(request.db, cli_actor())
        yield request
