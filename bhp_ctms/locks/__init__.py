"""Locks: a data manager freezes a form entry, a participant, a site or the whole
study against change, and unfreezes it, each with a reason and an e-signature.

Importing the package installs the guard (:mod:`bhp_ctms.locks.guard`) on every
session, as importing the audit capture installs the audit trail: wherever the
models are used, a write to locked data is refused.
"""

from __future__ import annotations

from typing import Any

from bhp_ctms.locks import guard as guard


def includeme(config: Any) -> None:
    # Imported here: importing a domain's models must not pull in its views' factories.
    from bhp_ctms.locks.views import participant_panel
    from bhp_ctms.studies.resources import StudyFactory

    study = "/studies/{code}"
    # The study's locks and their readiness; locking (what: ?scope=, ?site=,
    # ?participant= or ?entry=) and unlocking (?lock=) each ask for an e-signature.
    config.add_route("locks", study + "/locks", factory=StudyFactory)
    config.add_route("lock_new", study + "/locks/new", factory=StudyFactory)
    config.add_route("lock_unlock", study + "/locks/unlock", factory=StudyFactory)
    config.add_participant_panel("locks/_panel.html", participant_panel)
