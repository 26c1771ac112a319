"""Participants from screening to completion: registration, consent, eligibility,
status, their schedule of visits, the site grid and the dashboards."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    # Imported here: importing a domain's models must not pull in its views' factories.
    from bhp_ctms.participants.panels import add_participant_panel
    from bhp_ctms.participants.resources import ParticipantFactory
    from bhp_ctms.participants.worklists import add_participant_counts
    from bhp_ctms.sites.resources import SiteFactory
    from bhp_ctms.studies.resources import StudyFactory

    # What other domains add to the participants' pages (participants imports none).
    config.add_directive("add_participant_panel", add_participant_panel)
    config.add_directive("add_participant_counts", add_participant_counts)
    study = "/studies/{code}"
    participant = study + "/participants/{participant}"
    config.add_route("participants", study + "/participants/", factory=StudyFactory)
    config.add_route("screening_log", study + "/screening-log", factory=StudyFactory)
    config.add_route("study_dashboard", study + "/dashboard", factory=StudyFactory)
    config.add_route("participant_register", study + "/sites/{site}/register", factory=SiteFactory)
    config.add_route("site_grid", study + "/sites/{site}/grid", factory=SiteFactory)
    config.add_route("site_dashboard", study + "/sites/{site}/dashboard", factory=SiteFactory)
    config.add_route("participant", participant + "/", factory=ParticipantFactory)
    config.add_route("participant_consent", participant + "/consent", factory=ParticipantFactory)
    config.add_route(
        "participant_eligibility", participant + "/eligibility", factory=ParticipantFactory
    )
    config.add_route(
        "participant_eligibility_confirm",
        participant + "/eligibility/{assessment}/confirm",
        factory=ParticipantFactory,
    )
    config.add_route("participant_status", participant + "/status", factory=ParticipantFactory)
    config.add_route(
        "participant_visit",
        participant + "/visits/{event}/{instance}",
        factory=ParticipantFactory,
    )
    config.add_route(
        "participant_identifiers", participant + "/identifiers", factory=ParticipantFactory
    )
    config.add_route("participant_protocol", participant + "/protocol", factory=ParticipantFactory)
