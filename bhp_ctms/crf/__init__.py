"""Case report forms: definitions, the expression language, data entry, queries, SDV and
e-signatures."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    # Imported here: importing a domain's models must not pull in its views' factories.
    from bhp_ctms.crf.resources import EntryFactory, QueryFactory
    from bhp_ctms.participants.resources import ParticipantFactory
    from bhp_ctms.sites.resources import SiteFactory
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
