"""The words our ODM files and the ODM importer share: OIDs, alias contexts, data types.

An export names each thing by an OID made from its codes (``SE.<event>``,
``F.<form>.<version>``, ``IG.<form>.<version>[.<group>]``, ``IT.<form>.<version>.<item>``,
``CL.<codelist>``, ``MU.<units>``, ``LOC.<site>``, ``USR.<user>``, ``SD.<n>``) and gives
each definition an ``Alias`` whose context starts with ``BHP-CTMS:``, holding what ODM
has no attribute for (an item's own type, a form's version label, its code). Another
system reads the file as plain ODM; our importer reads the aliases back, so that a
study exported and imported again keeps its codes and types.
"""

from __future__ import annotations

from collections.abc import Mapping

ODM_NAMESPACE = "http://www.cdisc.org/ns/odm/v1.3"
XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"
REDCAP_NAMESPACE = "https://projectredcap.org"

# Alias contexts (an element holds at most one alias of each context).
ALIAS_CODE = "BHP-CTMS:code"
ALIAS_TYPE = "BHP-CTMS:type"
ALIAS_VERSION = "BHP-CTMS:version"
ALIAS_MISSING = "BHP-CTMS:missing_codes"
ALIAS_CDASH = "CDASH"
ALIAS_SDTM = "SDTM"

# The code list of the reasons a value is missing, named by each null ItemData's Flag.
MISSING_CODELIST = "CL.MISSING"
YES_NO_CODELIST = "CL.YES_NO"

# The participants' arms (unblinded exports only): one item group of a form of its own,
# at a study event of its own, so that the file stays valid ODM.
RANDOMISATION_EVENT = "SE.RANDOMISATION"
RANDOMISATION_FORM = "F.RANDOMISATION"
RANDOMISATION_GROUP = "IG.RANDOMISATION"
RANDOMISATION_ARM = "IT.RANDOMISATION.ARM"
RANDOMISATION_DATE = "IT.RANDOMISATION.RANDOMISED_ON"
ARM_CODELIST = "CL.ARM"

# Our item types as ODM data types. Times and datetimes are written with seconds
# (``14:30:00``) as xs:time and xs:dateTime want; partial dates as ODM's partialDate
# (``2024-03``, ``2024``) rather than our ``2024-03-UN``. Choices and yes/no hold
# codes from their code list; a multiple choice holds its codes joined by ``|``.
DATA_TYPES: Mapping[str, str] = {
    "text": "text",
    "long_text": "text",
    "integer": "integer",
    "decimal": "float",
    "date": "date",
    "time": "time",
    "datetime": "datetime",
    "single_choice": "text",
    "multiple_choice": "text",
    "yes_no": "integer",
    "calculated": "text",
}
PARTIAL_DATE_TYPE = "partialDate"


def oid_part(code: str) -> str:
    """A code as part of an OID: as it is, its spaces made underscores."""
    return "_".join(code.split()) or "_"


def event_oid(event_code: str) -> str:
    return f"SE.{oid_part(event_code)}"


def form_oid(form_code: str, number: int) -> str:
    return f"F.{oid_part(form_code)}.{number}"


def group_oid(form_code: str, number: int, group_code: str | None = None) -> str:
    base = f"IG.{oid_part(form_code)}.{number}"
    return base if group_code is None else f"{base}.{oid_part(group_code)}"


def item_oid(form_code: str, number: int, item_code: str) -> str:
    return f"IT.{oid_part(form_code)}.{number}.{oid_part(item_code)}"


def location_oid(site_code: str) -> str:
    return f"LOC.{oid_part(site_code)}"


def user_oid(user: str) -> str:
    return f"USR.{oid_part(user)}"


def study_oid(study_code: str) -> str:
    return f"S.{oid_part(study_code)}"
