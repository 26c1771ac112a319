"""Sections that other domains add to the participant's page.

The participants domain knows nothing of the domains built on it (``randomisation``
uses ``participants``, never the reverse), yet the participant's page is where a
coordinator randomises them. A domain adds a section with
``config.add_participant_panel(template, values)``: ``values(request, context)``
returns the template's values for that participant, or None to leave the section
out (for a user who may not see it, or a study without it). The page includes each
section's template, in the order added, with ``panel`` holding those values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PANELS_KEY = "bhp_ctms.participant_panels"


@dataclass(frozen=True)
class ParticipantPanel:
    template: str
    values: Callable[[Any, Any], dict[str, Any] | None]


@dataclass(frozen=True)
class ShownPanel:
    template: str
    values: dict[str, Any]


def add_participant_panel(
    config: Any, template: str, values: Callable[[Any, Any], dict[str, Any] | None]
) -> None:
    """``config.add_participant_panel(template, values)``: see the module's docstring."""
    config.registry.setdefault(PANELS_KEY, []).append(ParticipantPanel(template, values))


def shown_panels(request: Any, context: Any) -> list[ShownPanel]:
    """The sections this user sees on this participant's page."""
    shown = []
    for panel in request.registry.get(PANELS_KEY, ()):
        values = panel.values(request, context)
        if values is not None:
            shown.append(ShownPanel(panel.template, values))
    return shown
