"""What the locks domain tells the others."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bhp_ctms.locks.models import Lock


@dataclass(frozen=True)
class StudyLocked:
    """A whole study has been locked (``lock``, a study-scope lock).

    Notified with the application registry of the request whose session made the lock
    (a web request or a command's), inside its transaction: what a subscriber writes
    commits or aborts with the lock, and work for later (the lock's dataset snapshot)
    goes through ``request.enqueue``, sent only once the lock has committed.
    """

    request: Any
    lock: Lock
