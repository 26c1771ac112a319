"""Sites taking part in a study, their staff, and site scoping of every query."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    # Imported here: importing a domain's models must not pull in its views' factories.
    from bhp_ctms.sites.resources import SiteFactory
    from bhp_ctms.studies.resources import StudyFactory

    config.add_route("sites", "/studies/{code}/sites/", factory=StudyFactory)
    config.add_route("site_new", "/studies/{code}/sites/new", factory=StudyFactory)
    config.add_route("site", "/studies/{code}/sites/{site}/", factory=SiteFactory)
    config.add_route("site_edit", "/studies/{code}/sites/{site}/edit", factory=SiteFactory)
    config.add_route("site_delete", "/studies/{code}/sites/{site}/delete", factory=SiteFactory)
    config.add_route("site_staff_grant", "/studies/{code}/sites/{site}/staff", factory=SiteFactory)
    config.add_route(
        "site_staff_revoke",
        "/studies/{code}/sites/{site}/staff/{membership}/revoke",
        factory=SiteFactory,
    )
