"""A dataset snapshot as one CDISC ODM 1.3.2 file, streamed.

``write_odm(snapshot, options, out)`` writes the study's metadata and its clinical data
in one pass over the snapshot's entries, a few kilobytes at a time, so memory stays
the same whatever the size of the study. The bytes depend on the snapshot and the
options alone (the file's date is the snapshot's), so the same snapshot always gives
the same file. Every file validates against the ODM 1.3.2 schema.

What the file holds:

- ``ODM`` (FileOID from the study, the snapshot's kind and time, and the options),
  one ``Study`` with ``GlobalVariables``, ``BasicDefinitions`` (a ``MeasurementUnit``
  for each item unit) and one ``MetaDataVersion``. A snapshot records the form
  versions its entries were made on, not which protocol version each belongs to, so
  the metadata version holds every form version in the snapshot (a ``FormDef`` each,
  ``F.<form>.<version>``), the latest protocol version's events (``StudyEventDef``:
  scheduled events ``Repeating="No" Type="Scheduled"``, repeating ones
  ``Repeating="Yes" Type="Unscheduled"``), and names the protocol versions in its
  description. A form's items outside repeating groups make one ``ItemGroupDef``;
  each repeating group makes one more (``Repeating="Yes"``, its rows numbered by
  ``ItemGroupRepeatKey``). Each ``ItemDef`` has its question, units, code list, fixed
  ranges and CDASH/SDTM aliases; ``vocabulary`` says how our types become ODM's.
- ``AdminData``: a ``Location`` for each site (each participant's ``SiteRef``), and
  with the audit trail a ``User`` for each person in it and a ``SignatureDef`` for
  each signature meaning.
- ``ClinicalData``: a ``SubjectData`` for each participant (the study ID is the
  ``SubjectKey``), down to each ``ItemData``. A missing value (not done, not
  applicable, unknown) is ``IsNull="Yes"`` with the reason as a ``Flag`` of its
  ``Annotation``, whose value is a code of the ``CL.MISSING`` code list: ODM 1.3.2 has
  no attribute for why a value is null.
- Arms: only in an unblinded export of an unblinded snapshot, as the ``ARM`` item of a
  form of its own (``F.RANDOMISATION`` at event ``SE.RANDOMISATION``), so that the
  file stays valid ODM. A blinded export names no arm anywhere, not even in metadata.
- With ``options.audit_trail``, the file is ``Transactional``: its clinical data are
  the snapshot's changes in time order, each an ``ItemData`` (``Insert``, ``Update`` or
  ``Remove``) with its one ``AuditRecord`` (who, where, when, why; ``SourceID`` is the
  audit event's sequence), each inside ``SubjectData``... ``ItemGroupData`` elements
  of type ``Context``; consecutive changes to one entry share them. Items are named by
  the latest version of their form in the snapshot (a change record does not say
  which version it was made on). The signatures follow, participant by participant:
  each a ``Signature`` on its ``FormData`` (a form entry's) or its ``SubjectData`` (a
  casebook's), an invalidated one annotated as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from bhp_ctms.exports.formats import Sink
from bhp_ctms.exports.records import ExportOptions, Snapshot, SnapshotInfo
from bhp_ctms.odm.vocabulary import ODM_NAMESPACE, location_oid
from bhp_ctms.odm.writer.clinical import (
    Counter,
    write_allocations,
    write_signatures,
    write_snapshot_data,
    write_transactions,
)
from bhp_ctms.odm.writer.metadata import (
    ORIGINATOR,
    description,
    file_oid,
    metadata,
    people,
    write_admin,
    write_study,
)
from bhp_ctms.odm.writer.xml import Out, escaped, odm_datetime

__all__ = ["OdmWritten", "odm_file_name", "write_odm", "write_odm_files"]


@dataclass(frozen=True)
class OdmWritten:
    """What a file holds: participants, form entries and item values (or, in a
    transactional file, audit records) written, and signatures."""

    participants: int
    entries: int
    values: int
    signatures: int


def write_odm(
    snapshot: Snapshot,
    options: ExportOptions,
    out: BinaryIO,
    *,
    progress: Callable[[int], None] | None = None,
) -> OdmWritten:
    """Write ``snapshot`` as one ODM 1.3.2 file to ``out`` (see the module's docstring).

    ``options.forms`` limits the file to those forms; ``options.audit_trail`` makes it
    a transactional file of the changes and signatures. ``progress`` is called with the
    number of form entries written so far, every 10,000.
    """
    meta = metadata(snapshot, options)
    info = meta.info
    sink = Out(out)
    sink.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    sink.open(
        0,
        "ODM",
        xmlns=ODM_NAMESPACE,
        FileType="Transactional" if options.audit_trail else "Snapshot",
        Granularity="All",
        Description=description(info, meta.arms),
        FileOID=file_oid(info, options, meta.arms),
        CreationDateTime=odm_datetime(info.taken_at),
        AsOfDateTime=odm_datetime(info.taken_at),
        ODMVersion="1.3.2",
        Originator=ORIGINATOR,
        SourceSystem=ORIGINATOR,
    )
    write_study(sink, meta)
    trail = people(snapshot) if options.audit_trail else None
    write_admin(sink, meta, trail)
    counter = Counter()
    sink.write(
        f'  <ClinicalData StudyOID="{escaped(meta.study)}" '
        f'MetaDataVersionOID="{escaped(meta.version)}">\n'
    )
    if trail is None:
        write_snapshot_data(sink, snapshot, meta, counter, progress)
    else:
        sites = {
            participant.key: location_oid(participant.site_code)
            for participant in snapshot.participants()
        }
        counter.participants = len(sites)
        write_transactions(sink, snapshot, meta, counter, sites)
        if meta.arms:
            write_allocations(sink, snapshot)
        write_signatures(sink, snapshot, meta, trail, sites, counter)
    sink.write("  </ClinicalData>\n</ODM>\n")
    sink.flush()
    if progress is not None:
        progress(counter.entries)
    return OdmWritten(counter.participants, counter.entries, counter.values, counter.signatures)


def odm_file_name(info: SnapshotInfo) -> str:
    """The ODM file's name within an export bundle."""
    return f"odm/{info.study_code.lower()}.xml"


def write_odm_files(
    snapshot: Snapshot,
    options: ExportOptions,
    sink: Sink,
    *,
    progress: Callable[[int], None] | None = None,
) -> OdmWritten:
    """Write the snapshot's ODM file into an export bundle (``odm/<study>.xml``)."""
    with sink.open(odm_file_name(snapshot.info)) as out:
        return write_odm(snapshot, options, out, progress=progress)
