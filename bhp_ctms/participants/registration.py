"""What a participant's registration holds: their direct identifiers, and the dates
recorded for them, which fall between their registration and today.

Pure rules; the service registers participants, keeps their identifiers encrypted and
looks for duplicates.
"""

from __future__ import annotations

from datetime import date

from bhp_ctms.participants.identifiers import Identifiers, nhs_number_problem
from bhp_ctms.participants.models import Participant
from bhp_ctms.sites.models import Site
from bhp_ctms.templating import ukdate


def identifiers_problem(values: Identifiers, today: date) -> tuple[str, str] | None:
    """Why normalised identifiers cannot be held, as (message, field at fault); None
    when they can."""
    if values.nhs_number is not None:
        problem = nhs_number_problem(values.nhs_number)
        if problem:
            return problem, "nhs_number"
    if values.full_name is not None and len(values.full_name) > 200:
        return "Full name must be 200 characters or fewer", "full_name"
    if values.date_of_birth is not None and values.date_of_birth > today:
        return "Date of birth cannot be in the future", "date_of_birth"
    return None


def registered_identifiers_problem(
    participant: Participant, values: Identifiers
) -> tuple[str, str] | None:
    """Why a registered participant's identifiers cannot become ``values`` (checked by
    :func:`identifiers_problem`), as (message, field at fault); None when they can."""
    if participant.is_child and values.date_of_birth is None:
        return "Enter the child's date of birth: it shows when they reach 16", "date_of_birth"
    if values.date_of_birth is not None and values.date_of_birth > participant.registered_on:
        return "Date of birth cannot be after the date of registration", "date_of_birth"
    return None


def recorded_date_problem(
    participant: Participant, value: date, today: date, label: str
) -> str | None:
    """Why a date recorded for the participant (``label``: "The date of ...") is not
    between their registration and today; None when it is."""
    if value > today:
        return f"{label} cannot be in the future"
    if value < participant.registered_on:
        return (
            f"{label} cannot be before the participant was registered, on "
            f"{ukdate(participant.registered_on)}"
        )
    return None


def where_registered(found: tuple[str, int], site: Site) -> str:
    """Where a possible duplicate (study ID, site id) is registered, said to staff of
    ``site``: their study ID only when they are at the same site."""
    code, site_id = found
    return f": {code}" if site_id == site.id else " at another site"
