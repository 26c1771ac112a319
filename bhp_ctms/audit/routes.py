"""Routes of the audit trail's pages (trail, history, export, reviews, verification),
and its tasks."""

from __future__ import annotations

from typing import Any

# A study's pages take their ACL from the study (bhp_ctms.studies.resources).
STUDY = "bhp_ctms.studies.resources.StudyFactory"


def includeme(config: Any) -> None:
    config.add_route("audit_trail", "/studies/{code}/audit/", factory=STUDY)
    config.add_route("audit_history", "/studies/{code}/audit/history", factory=STUDY)
    config.add_route("audit_export", "/studies/{code}/audit/export.csv", factory=STUDY)
    config.add_route("audit_system", "/audit/system/")
    config.add_route("audit_reviews", "/studies/{code}/audit/reviews/", factory=STUDY)
    config.add_route("audit_review_new", "/studies/{code}/audit/reviews/new", factory=STUDY)
    # One address, two routes: "Verify now" posts to the page it is on. The POST route
    # comes first, as routes are matched in order.
    config.add_route(
        "audit_verification_run",
        "/studies/{code}/audit/verification/",
        factory=STUDY,
        request_method="POST",
    )
    config.add_route("audit_verification", "/studies/{code}/audit/verification/", factory=STUDY)
    config.include("bhp_ctms.audit.tasks")
