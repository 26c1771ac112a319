"""Randomisation and blinding: allocation lists, allocating participants exactly once,
emergency unblinding, and the statistician's reports."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    # Imported here: importing a domain's models must not pull in its views' factories.
    from bhp_ctms.participants.resources import ParticipantFactory
    from bhp_ctms.randomisation.views import participant_panel
    from bhp_ctms.studies.resources import StudyFactory

    study = "/studies/{code}"
    participant = study + "/participants/{participant}"
    config.add_route("randomise", participant + "/randomise", factory=ParticipantFactory)
    config.add_route("unblind", participant + "/unblind", factory=ParticipantFactory)
    config.add_route(
        "allocation_invalidate", participant + "/allocation/invalidate", factory=ParticipantFactory
    )
    config.add_route("randomisation", study + "/randomisation", factory=StudyFactory)
    config.add_route("randomisation_list", study + "/randomisation/list.csv", factory=StudyFactory)
    config.add_route(
        "randomisation_allocations", study + "/randomisation/allocations", factory=StudyFactory
    )
    config.add_route(
        "randomisation_allocations_csv",
        study + "/randomisation/allocations.csv",
        factory=StudyFactory,
    )
    config.add_participant_panel("randomisation/_panel.html", participant_panel)
