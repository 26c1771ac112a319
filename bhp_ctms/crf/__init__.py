"""Case report forms: definitions, the expression language, data entry, queries, SDV and
e-signatures."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    # Imported here: importing a domain's models must not pull in its views' factories.
    from bhp_ctms.crf.queries import open_query_counts
    from bhp_ctms.crf.resources import EntryFactory, QueryFactory
    from bhp_ctms.crf.tasks import recheck_after_load, recheck_after_migration
    from bhp_ctms.participants.migration import ParticipantsMigrated
    from bhp_ctms.participants.resources import ParticipantFactory
    from bhp_ctms.participants.worklists import ParticipantCounts
    from bhp_ctms.permissions import Permissions
    from bhp_ctms.sites.resources import SiteFactory
    from bhp_ctms.studies.loading import StudyVersionLoaded
    from bhp_ctms.studies.resources import StudyFactory

    study = "/studies/{code}"
    participant = study + "/participants/{participant}"
    entry = study + "/entries/{entry}"
    # Data entry: one page per participant, event (instance) and form.
    config.add_route(
        "crf_form",
        participant + "/events/{event}/{instance}/forms/{form}",
        factory=ParticipantFactory,
    )
    config.add_route("crf_casebook", participant + "/casebook", factory=ParticipantFactory)
    # Queries.
    config.add_route("crf_query_new", entry + "/queries/new", factory=EntryFactory)
    config.add_route("crf_query", study + "/queries/{query}", factory=QueryFactory)
    config.add_route("crf_site_queries", study + "/sites/{site}/queries", factory=SiteFactory)
    config.add_route("crf_recheck", study + "/data-quality", factory=StudyFactory)
    # Source data verification.
    config.add_route("crf_sdv", entry + "/sdv", factory=EntryFactory)
    config.add_route("crf_site_sdv", study + "/sites/{site}/sdv", factory=SiteFactory)
    config.add_route("crf_sdv_plan", study + "/sdv-plan", factory=StudyFactory)
    # Electronic signatures.
    config.add_route("crf_entry_sign", entry + "/sign", factory=EntryFactory)
    config.add_route("crf_casebook_sign", participant + "/sign", factory=ParticipantFactory)

    # What the participants' pages show of the CRFs: each participant's open queries on
    # the site's grid, the site's on its dashboard, linked to the site's queries.
    config.add_participant_counts(
        ParticipantCounts(
            key="open-queries",
            heading="Open queries",
            description=(
                "Queries on participants' forms that are not yet closed: open, or"
                " answered and waiting for a monitor or data manager."
            ),
            singular="open query",
            plural="open queries",
            permission=Permissions.CRF_VIEW,
            route_name="crf_site_queries",
            counter=open_query_counts,
        ),
    )
    # Stored data are checked again, in the background, when what they are checked
    # against may have changed.
    config.add_subscriber(recheck_after_load, StudyVersionLoaded)
    config.add_subscriber(recheck_after_migration, ParticipantsMigrated)
