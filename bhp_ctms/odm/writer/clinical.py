"""The clinical data of an ODM export: the snapshot's values participant by
participant, or (a transactional file) its changes in time order and its signatures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bhp_ctms.crf.definition.model import MISSING_CODES, FormDefinition
from bhp_ctms.exports.records import (
    ChangeRecord,
    EntryRecord,
    FormVersionRecord,
    ParticipantRecord,
    SignatureRecord,
    Snapshot,
)
from bhp_ctms.odm.vocabulary import (
    MISSING_CODELIST,
    RANDOMISATION_ARM,
    RANDOMISATION_DATE,
    RANDOMISATION_EVENT,
    RANDOMISATION_FORM,
    RANDOMISATION_GROUP,
    event_oid,
    form_oid,
    group_oid,
    location_oid,
    user_oid,
)
from bhp_ctms.odm.writer.metadata import (
    FormLayout,
    Metadata,
    People,
    Slot,
    change_user,
    split_path,
    study_location,
)
from bhp_ctms.odm.writer.xml import SPECIAL, Out, escaped, odm_datetime


class Counter:
    def __init__(self) -> None:
        self.participants = 0
        self.entries = 0
        self.values = 0
        self.signatures = 0


def _missing_flags() -> dict[str, str]:
    """The end of a null ItemData for each missing code."""
    return {
        code: (
            ' IsNull="Yes">\n'
            '              <Annotation SeqNum="1">\n'
            "                <Flag>\n"
            f'                  <FlagValue CodeListOID="{MISSING_CODELIST}">{code}</FlagValue>\n'
            "                </Flag>\n"
            "              </Annotation>\n"
            "            </ItemData>\n"
        )
        for code in MISSING_CODES.values()
    }


def write_snapshot_data(
    out: Out,
    snapshot: Snapshot,
    meta: Metadata,
    counter: Counter,
    progress: Callable[[int], None] | None,
) -> None:
    wanted = {record.form_code for record in meta.forms}
    repeating = {event.code for event in meta.info.events if event.repeating}
    participants = iter(snapshot.participants())
    flags = _missing_flags()
    write = out.write
    current: ParticipantRecord | None = None
    current_event: tuple[str, int] | None = None
    for entry in snapshot.entries():
        if current is None or entry.participant != current.key:
            if current is not None:
                if current_event is not None:
                    write("      </StudyEventData>\n")
                write("    </SubjectData>\n")
            current = _next_participant(out, participants, entry.participant, meta, counter)
            current_event = None
        if entry.form not in wanted:
            continue
        place = (entry.event, entry.instance)
        if place != current_event:
            if current_event is not None:
                write("      </StudyEventData>\n")
            key = (
                f' StudyEventRepeatKey="{entry.instance}"'
                if entry.event in repeating or entry.instance != 1
                else ""
            )
            write(
                f'      <StudyEventData StudyEventOID="{escaped(event_oid(entry.event))}"{key}>\n'
            )
            current_event = place
        _write_entry(out, entry, meta, flags, counter)
        counter.entries += 1
        if progress is not None and counter.entries % 10_000 == 0:
            progress(counter.entries)
    if current is not None:
        if current_event is not None:
            write("      </StudyEventData>\n")
        write("    </SubjectData>\n")
    for participant in participants:
        _open_subject(out, participant, meta, counter)
        write("    </SubjectData>\n")


def _next_participant(
    out: Out,
    participants: Iterator[ParticipantRecord],
    key: str,
    meta: Metadata,
    counter: Counter,
) -> ParticipantRecord:
    """Write the participants before ``key`` (they have no entries), and open ``key``'s."""
    for participant in participants:
        _open_subject(out, participant, meta, counter)
        if participant.key == key:
            return participant
        out.write("    </SubjectData>\n")
    raise ValueError(f"the snapshot's entries of {key} are not in the order of its participants")


def _open_subject(
    out: Out, participant: ParticipantRecord, meta: Metadata, counter: Counter
) -> None:
    counter.participants += 1
    out.write(f'    <SubjectData SubjectKey="{escaped(participant.key)}">\n')
    out.write(f'      <SiteRef LocationOID="{escaped(location_oid(participant.site_code))}"/>\n')
    if meta.arms and participant.arm:
        out.write(
            f'      <StudyEventData StudyEventOID="{RANDOMISATION_EVENT}">\n'
            f'        <FormData FormOID="{RANDOMISATION_FORM}">\n'
            f'          <ItemGroupData ItemGroupOID="{RANDOMISATION_GROUP}">\n'
            f'            <ItemData ItemOID="{RANDOMISATION_ARM}" '
            f'Value="{escaped(participant.arm)}"/>\n'
        )
        if participant.randomised_on:
            out.write(
                f'            <ItemData ItemOID="{RANDOMISATION_DATE}" '
                f'Value="{escaped(participant.randomised_on)}"/>\n'
            )
        out.write("          </ItemGroupData>\n        </FormData>\n      </StudyEventData>\n")


def _layout(meta: Metadata, form: str, number: int) -> FormLayout:
    layout = meta.layouts.get((form, number))
    if layout is None:
        # An entry on a version the snapshot does not describe: named by that version,
        # its items placed by their paths alone.
        empty = FormDefinition(
            code=form, title=form, version=str(number), description="", entries=()
        )
        record = FormVersionRecord(form, number, str(number), form, "", {})
        layout = FormLayout(record, empty, form_oid(form, number), group_oid(form, number), {})
        meta.layouts[(form, number)] = layout
    return layout


def _write_entry(
    out: Out, entry: EntryRecord, meta: Metadata, flags: dict[str, str], counter: Counter
) -> None:
    layout = _layout(meta, entry.form, entry.form_version)
    slots = layout.slots
    special = SPECIAL.search
    main: list[str] = []
    rows: dict[tuple[int, int], list[str]] = {}
    for record in entry.values:
        slot = slots.get(record.path) or layout.slot(record.path)
        value = record.value
        if record.missing is not None and not value:
            flag = flags.get(record.missing)
            if flag is None:
                continue
            text = slot.prefix + flag
        elif value:
            if slot.convert is not None:
                value = slot.convert(value)
            if special(value) is not None:
                value = escaped(value)
            text = f'{slot.prefix} Value="{value}"/>\n'
        else:
            continue
        counter.values += 1
        if slot.group is None:
            main.append(text)
        else:
            rows.setdefault(slot.group, []).append(text)
    write = out.write
    write(f'        <FormData FormOID="{escaped(layout.oid)}">\n')
    if main:
        write(f'          <ItemGroupData ItemGroupOID="{escaped(layout.main_oid)}">\n')
        write("".join(main))
        write("          </ItemGroupData>\n")
    if rows:
        oids = {index: oid for index, oid in layout.group_oids.values()}
        for (index, row), texts in sorted(rows.items()):
            write(
                f'          <ItemGroupData ItemGroupOID="{escaped(oids[index])}" '
                f'ItemGroupRepeatKey="{row}">\n'
            )
            write("".join(texts))
            write("          </ItemGroupData>\n")
    write("        </FormData>\n")


@dataclass
class _Context:
    """The SubjectData ... ItemGroupData elements open around the current changes."""

    participant: str = ""
    event: tuple[str, int] | None = None
    form: str = ""
    group: tuple[str, int] | None = None


def write_transactions(
    out: Out,
    snapshot: Snapshot,
    meta: Metadata,
    counter: Counter,
    sites: dict[str, str],
) -> None:
    wanted = {record.form_code for record in meta.forms}
    repeating = {event.code for event in meta.info.events if event.repeating}
    fallback = study_location(meta.info)
    context = _Context()
    for change in snapshot.changes():
        if change.form not in wanted:
            continue
        layout = latest_layout(meta, change.form)
        slot = layout.slot(change.path)
        group_code, row, _ = split_path(change.path)
        group = (group_code or "", row) if slot.group is not None else ("", 0)
        _open_context(out, context, change, layout, group, repeating, sites)
        _write_change(out, change, slot, sites.get(change.participant, fallback))
        counter.values += 1
    _close_context(out, context, 0)


def latest_layout(meta: Metadata, form: str) -> FormLayout:
    record = meta.latest[form]
    return meta.layouts[(form, record.number)]


def _close_context(out: Out, context: _Context, level: int) -> None:
    """Close the open context elements deeper than ``level`` (0: all of them)."""
    if context.group is not None and level < 4:
        out.write("          </ItemGroupData>\n")
        context.group = None
    if context.form and level < 3:
        out.write("        </FormData>\n")
        context.form = ""
    if context.event is not None and level < 2:
        out.write("      </StudyEventData>\n")
        context.event = None
    if context.participant and level < 1:
        out.write("    </SubjectData>\n")
        context.participant = ""


def _open_context(
    out: Out,
    context: _Context,
    change: ChangeRecord,
    layout: FormLayout,
    group: tuple[str, int],
    repeating: set[str],
    sites: dict[str, str],
) -> None:
    event = (change.event, change.instance)
    if context.participant != change.participant:
        _close_context(out, context, 0)
    elif context.event != event:
        _close_context(out, context, 1)
    elif context.form != layout.oid:
        _close_context(out, context, 2)
    elif context.group != group:
        _close_context(out, context, 3)
    if not context.participant:
        _open_context_subject(out, change.participant, sites)
        context.participant = change.participant
    if context.event is None:
        key = (
            f' StudyEventRepeatKey="{change.instance}"'
            if change.event in repeating or change.instance != 1
            else ""
        )
        out.write(
            f'      <StudyEventData StudyEventOID="{escaped(event_oid(change.event))}"{key} '
            'TransactionType="Context">\n'
        )
        context.event = event
    if not context.form:
        out.write(f'        <FormData FormOID="{escaped(layout.oid)}" TransactionType="Context">\n')
        context.form = layout.oid
    if context.group is None:
        group_code, row = group
        if group_code:
            placed = layout.group_oids[group_code]
            out.write(
                f'          <ItemGroupData ItemGroupOID="{escaped(placed[1])}" '
                f'ItemGroupRepeatKey="{row}" TransactionType="Context">\n'
            )
        else:
            out.write(
                f'          <ItemGroupData ItemGroupOID="{escaped(layout.main_oid)}" '
                'TransactionType="Context">\n'
            )
        context.group = group


def _open_context_subject(out: Out, participant: str, sites: dict[str, str]) -> None:
    out.write(f'    <SubjectData SubjectKey="{escaped(participant)}" TransactionType="Context">\n')
    site = sites.get(participant)
    if site is not None:
        out.write(f'      <SiteRef LocationOID="{escaped(site)}"/>\n')


_TRANSACTIONS = {"insert": "Insert", "update": "Update", "remove": "Remove"}


def _write_change(out: Out, change: ChangeRecord, slot: Slot, location: str) -> None:
    action = "remove" if change.new is None else change.action
    transaction = _TRANSACTIONS.get(action, "Update")
    value = ""
    if change.new is not None:
        new = slot.convert(change.new) if slot.convert is not None and change.new else change.new
        value = f' Value="{escaped(new)}"'
    parts = [
        f'{slot.prefix} TransactionType="{transaction}"{value}>\n',
        "              <AuditRecord>\n",
        f'                <UserRef UserOID="{escaped(user_oid(change_user(change)))}"/>\n',
        f'                <LocationRef LocationOID="{escaped(location)}"/>\n',
        f"                <DateTimeStamp>{escaped(odm_datetime(change.occurred_at))}"
        "</DateTimeStamp>\n",
    ]
    if change.reason:
        parts.append(
            f"                <ReasonForChange>{escaped(change.reason)}</ReasonForChange>\n"
        )
    parts.append(f"                <SourceID>audit event {change.sequence}</SourceID>\n")
    parts.append("              </AuditRecord>\n            </ItemData>\n")
    out.write("".join(parts))


def write_allocations(out: Out, snapshot: Snapshot) -> None:
    """Each randomised participant's arm, as it stands (an allocation is not a change
    to a form's item, so it has no audit record here)."""
    for participant in snapshot.participants():
        if not participant.arm:
            continue
        out.write(
            f'    <SubjectData SubjectKey="{escaped(participant.key)}" TransactionType="Context">\n'
            f'      <SiteRef LocationOID="{escaped(location_oid(participant.site_code))}"/>\n'
            f'      <StudyEventData StudyEventOID="{RANDOMISATION_EVENT}" '
            'TransactionType="Context">\n'
            f'        <FormData FormOID="{RANDOMISATION_FORM}" TransactionType="Context">\n'
            f'          <ItemGroupData ItemGroupOID="{RANDOMISATION_GROUP}" '
            'TransactionType="Context">\n'
            f'            <ItemData ItemOID="{RANDOMISATION_ARM}" TransactionType="Upsert" '
            f'Value="{escaped(participant.arm)}"/>\n'
        )
        if participant.randomised_on:
            out.write(
                f'            <ItemData ItemOID="{RANDOMISATION_DATE}" TransactionType="Upsert" '
                f'Value="{escaped(participant.randomised_on)}"/>\n'
            )
        out.write(
            "          </ItemGroupData>\n        </FormData>\n      </StudyEventData>\n"
            "    </SubjectData>\n"
        )


def write_signatures(
    out: Out,
    snapshot: Snapshot,
    meta: Metadata,
    people: People,
    sites: dict[str, str],
    counter: Counter,
) -> None:
    repeating = {event.code for event in meta.info.events if event.repeating}
    fallback = study_location(meta.info)
    for signature in snapshot.signatures():
        if signature.form and signature.form not in meta.latest:
            continue
        location = sites.get(signature.participant, fallback)
        signed, note = _signature(signature, people, location)
        subject = escaped(signature.participant)
        out.write(f'    <SubjectData SubjectKey="{subject}" TransactionType="Context">\n')
        site = sites.get(signature.participant)
        if not signature.form:
            # A casebook's signature comes before the SubjectData's SiteRef, its note after.
            out.write(_indented(signed, 3))
            if site is not None:
                out.write(f'      <SiteRef LocationOID="{escaped(site)}"/>\n')
            out.write(_indented(note, 3))
            out.write("    </SubjectData>\n")
            counter.signatures += 1
            continue
        if site is not None:
            out.write(f'      <SiteRef LocationOID="{escaped(site)}"/>\n')
        key = (
            f' StudyEventRepeatKey="{signature.instance}"'
            if signature.event in repeating or signature.instance != 1
            else ""
        )
        layout = latest_layout(meta, signature.form)
        out.write(
            f'      <StudyEventData StudyEventOID="{escaped(event_oid(signature.event))}"{key} '
            'TransactionType="Context">\n'
            f'        <FormData FormOID="{escaped(layout.oid)}" TransactionType="Context">\n'
        )
        out.write(_indented(signed + note, 5))
        out.write("        </FormData>\n      </StudyEventData>\n    </SubjectData>\n")
        counter.signatures += 1


def _indented(lines: list[str], depth: int) -> str:
    pad = "  " * depth
    return "".join(f"{pad}{line}\n" for line in lines)


def _signature(
    signature: SignatureRecord, people: People, location: str
) -> tuple[list[str], list[str]]:
    """A Signature's lines, and an Annotation's saying it no longer holds (none if it
    does)."""
    signed = [
        "<Signature>",
        f'  <UserRef UserOID="{escaped(user_oid(signature.signer))}"/>',
        f'  <LocationRef LocationOID="{escaped(location)}"/>',
        f'  <SignatureRef SignatureOID="{escaped(people.meanings[signature.meaning])}"/>',
        f"  <DateTimeStamp>{escaped(odm_datetime(signature.signed_at))}</DateTimeStamp>",
        "</Signature>",
    ]
    if signature.valid:
        return signed, []
    comment = (
        f"This signature by {signature.signer} ({signature.signer_role}) no longer holds: "
        "the data it covered changed after it was made"
    )
    note = [
        '<Annotation SeqNum="1">',
        f'  <Comment SponsorOrSite="Sponsor">{escaped(comment)}</Comment>',
        "</Annotation>",
    ]
    return signed, note
