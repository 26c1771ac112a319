"""Electronic signatures of form entries and of participants' casebooks (21 CFR Part 11
§11.50, §11.70, §11.200).

A signature records the signer's printed name and role, what they mean by it, the UTC
time, and the SHA-256 of exactly what they signed, so it is bound to its record: the
signed content can be hashed again at any time, and a signature whose content no
longer hashes the same is shown as invalid whatever wrote the change. The save service
also invalidates, visibly and with a reason, every signature over data it changes
(:func:`invalidate_signatures`).

Signing needs the signer's password again, and their TOTP code when they have a second
factor (§11.200(a)(1)(i)): a wrong one counts as a failed log-in attempt towards the
account's lock-out, exactly as at the log-in page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from bhp_ctms.accounts.models import Membership, User
from bhp_ctms.accounts.services import (
    AccountService,
    LoginStatus,
    Reauthentication,
    ReauthenticationRefused,
)
from bhp_ctms.audit.capture import AuditContext, acting_as, current_actor
from bhp_ctms.audit.models import canonical_json
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.crf.definition.model import MISSING_LABELS, FormDefinition, Item
from bhp_ctms.crf.entry import form_definition
from bhp_ctms.crf.evaluation import split_path
from bhp_ctms.crf.models import FormEntry, FormStatus, Signature, SignatureMeaning
from bhp_ctms.crf.values import display_value
from bhp_ctms.db import utcnow
from bhp_ctms.participants.models import Participant
from bhp_ctms.permissions import MATRIX, Permissions
from bhp_ctms.settings import Settings
from bhp_ctms.studies.services import protocol_definition
from bhp_ctms.templating import ukdate

CHANGED_WHILE_READING = (
    "The form changed while you were reading it: nothing was signed. Read it again below, "
    "then sign."
)
CASEBOOK_CHANGED_WHILE_READING = (
    "The casebook changed while you were reading it: nothing was signed. Read it again "
    "below, then sign."
)
LOCKED_ACCOUNT = (
    "Your account is locked after too many failed attempts, until {until}: nothing was "
    "signed. Ask the trials unit if you need it unlocked sooner."
)
BAD_PASSWORD = "Your password is not right: nothing was signed"
BAD_CODE = "The security code is not right, or it has already been used: nothing was signed"
NOT_A_SIGNER = "Only the site's principal investigator can sign this participant's forms"


class SignatureRefused(Exception):
    """Why a signature could not be made; nothing was signed. ``field`` names the form
    field the message belongs beside, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# -- what is signed ------------------------------------------------------------------------


def _sha256(content: object) -> str:
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def _recorded_values(entry: FormEntry) -> list[list[str]]:
    """[path, value, missing code] of every item holding a value or a missing-data code,
    by path. A blank row is the same content as no row at all."""
    return sorted(
        [row.item_path, row.value or "", row.missing_code or ""]
        for row in entry.values
        if row.value or row.missing_code
    )


def entry_content_sha256(entry: FormEntry) -> str:
    """SHA-256 of a form entry's content: the canonical JSON of its form key, its form
    version's SHA-256, and every item's value and missing-data code, sorted by path."""
    return _sha256(
        {
            "form": entry.form_key,
            "form_version": entry.form_version.sha256,
            "values": _recorded_values(entry),
        }
    )


def casebook_entries(db: Session, participant: Participant) -> list[FormEntry]:
    """Every form entry of a participant, in the order they were started."""
    return list(
        db.scalars(
            select(FormEntry)
            .where(FormEntry.participant_id == participant.id)
            .options(selectinload(FormEntry.values), selectinload(FormEntry.form_version))
            .order_by(FormEntry.id)
        )
    )


def casebook_content_sha256(db: Session, participant: Participant) -> str:
    """SHA-256 of a participant's casebook: their study ID and each form entry's key and
    content hash. A form added later changes it too: the casebook is no longer the one
    signed."""
    return _sha256(
        {
            "participant": participant.code,
            "forms": sorted(
                [entry.form_key, entry_content_sha256(entry)]
                for entry in casebook_entries(db, participant)
            ),
        }
    )


def verify_signature(db: Session, signature: Signature) -> bool:
    """Whether the signed content still hashes to what was signed."""
    if signature.entry is not None:
        return entry_content_sha256(signature.entry) == signature.content_sha256
    return casebook_content_sha256(db, signature.participant) == signature.content_sha256


# -- how signed content is shown ---------------------------------------------------------


def describe_entry(entry: FormEntry) -> str:
    """A form entry as people name it: ``Vital signs at Baseline`` (``at Adverse
    event #2`` for a repeating event's second instance)."""
    try:
        event_name = (
            protocol_definition(entry.participant.protocol_version).event(entry.event_code).name
        )
    except KeyError:
        event_name = entry.event_code
    if entry.event_instance != 1:
        event_name = f"{event_name} #{entry.event_instance}"
    return f"{entry.form_version.title} at {event_name}"


@dataclass(frozen=True)
class ShownValue:
    """One item's value on a form entry as a person reads it."""

    path: str
    label: str
    text: str
    identifier: bool = False
    group: str = ""
    row: int = 0

    @property
    def blank(self) -> bool:
        return not self.text


def _row_label(definition: FormDefinition, path: str) -> tuple[Item | None, str, str, int]:
    group_code, row, code = split_path(path)
    try:
        item = definition.item(code)
    except KeyError:
        return None, path, "", 0
    group = definition.group_of(code)
    if group is None or group_code is None:
        return item, item.label or code, "", 0
    return item, item.label or code, group.label, row


def item_label(entry: FormEntry, path: str) -> str:
    """An item path as people read it: ``Weight``, or ``Dose (row 2 of Medications)``."""
    _, label, group, row = _row_label(form_definition(entry.form_version), path)
    return f"{label} (row {row} of {group})" if group else label


def shown_values(entry: FormEntry) -> list[ShownValue]:
    """Every item of the form with its value (blank ones too), in page order; the
    rows of repeating groups in row order; anything stored outside the definition last."""
    definition = form_definition(entry.form_version)
    rows = {row.item_path: row for row in entry.values}
    group_rows: dict[str, set[int]] = {group.code: set() for group in definition.groups}
    for path in rows:
        group_code, row_number, _ = split_path(path)
        if group_code in group_rows:
            group_rows[group_code].add(row_number)
    shown: list[ShownValue] = []
    seen: set[str] = set()

    def add(item: Item, path: str, group: str = "", row_number: int = 0) -> None:
        stored = rows.get(path)
        text = ""
        if stored is not None and stored.missing_code:
            text = MISSING_LABELS.get(stored.missing_code, stored.missing_code)
        elif stored is not None and stored.value:
            text = display_value(item, stored.value)
        label = item.label or item.code
        shown.append(ShownValue(path, label, text, item.identifier, group, row_number))
        seen.add(path)

    for entry_part in definition.entries:
        if isinstance(entry_part, Item):
            if entry_part.holds_value:
                add(entry_part, entry_part.code)
            continue
        for row_number in sorted(group_rows[entry_part.code]):
            for item in entry_part.items:
                if item.holds_value:
                    path = f"{entry_part.code}[{row_number}].{item.code}"
                    add(item, path, entry_part.label, row_number)
    for path, stored in sorted(rows.items()):
        if path not in seen and (stored.value or stored.missing_code):
            text = stored.value or MISSING_LABELS.get(stored.missing_code or "", "")
            shown.append(ShownValue(path, path, text))
    return shown


@dataclass(frozen=True)
class SignatureState:
    """A signature as its record's page shows it: valid or not, and why not."""

    signature: Signature
    valid: bool
    problem: str = ""


def entry_signatures(db: Session, entry: FormEntry) -> list[Signature]:
    """The signatures over a form entry: its own, and its participant's casebook
    signatures; the latest first, invalid ones too."""
    return list(
        db.scalars(
            select(Signature)
            .where(
                or_(
                    Signature.form_entry_id == entry.id,
                    and_(
                        Signature.participant_id == entry.participant_id,
                        Signature.form_entry_id.is_(None),
                    ),
                )
            )
            .order_by(Signature.signed_at.desc(), Signature.id.desc())
        )
    )


def casebook_signatures(db: Session, participant: Participant) -> list[Signature]:
    """A participant's casebook signatures, the latest first, invalid ones too."""
    return list(
        db.scalars(
            select(Signature)
            .where(Signature.participant_id == participant.id, Signature.form_entry_id.is_(None))
            .order_by(Signature.signed_at.desc(), Signature.id.desc())
        )
    )


def signature_states(db: Session, signatures: Iterable[Signature]) -> list[SignatureState]:
    """Each signature with whether it is valid: not invalidated, and its content still
    hashing to what was signed (checked afresh, so a change that went around the save
    service still shows)."""
    states = []
    # A casebook is hashed once however many signatures it has.
    casebooks: dict[int, str] = {}

    def still_signed(signature: Signature) -> bool:
        if signature.entry is not None:
            return entry_content_sha256(signature.entry) == signature.content_sha256
        if signature.participant_id not in casebooks:
            casebooks[signature.participant_id] = casebook_content_sha256(db, signature.participant)
        return casebooks[signature.participant_id] == signature.content_sha256

    for signature in signatures:
        if signature.invalidated_at is not None:
            problem = (
                f"Invalidated on {ukdate(signature.invalidated_at, with_time=True)} because "
                f"{signature.invalidated_reason or 'the signed data changed'}"
            )
            states.append(SignatureState(signature, False, problem))
        elif not still_signed(signature):
            what = "form" if signature.entry is not None else "casebook"
            problem = f"The {what} is no longer what was signed: its content has changed since"
            states.append(SignatureState(signature, False, problem))
        else:
            states.append(SignatureState(signature, True))
    return states


# -- who may sign ------------------------------------------------------------------------


def signing_role(db: Session, signer: User, participant: Participant) -> str:
    """The signer's role at the participant's site that lets them sign ("Site PI"), or
    "" when they hold none there. Signing is a site-only permission: a study-wide role
    never gives it."""
    roles = db.scalars(
        select(Membership.role).where(
            Membership.user_id == signer.id,
            Membership.study_id == participant.study_id,
            Membership.site_id == participant.site_id,
        )
    )
    signing = sorted({role for role in roles if Permissions.CRF_SIGN in MATRIX[role]})
    return ", ".join(role.label for role in signing)


def entry_signing_problem(entry: FormEntry) -> str | None:
    """Why a form entry cannot be signed now; None when it can."""
    if entry.status == FormStatus.IN_PROGRESS:
        return "This form is still in progress: a form is signed once it is complete"
    if entry.status == FormStatus.LOCKED:
        return "This form is locked: its signatures can no longer change"
    return None


def casebook_signing_problem(entries: Sequence[FormEntry]) -> str | None:
    """Why a casebook of these entries cannot be signed now; None when it can."""
    if not entries:
        return "This participant has no forms to sign yet"
    in_progress = [entry for entry in entries if entry.status == FormStatus.IN_PROGRESS]
    if in_progress:
        names = "; ".join(describe_entry(entry) for entry in in_progress)
        return (
            f"The casebook cannot be signed while forms are in progress. Complete these "
            f"first: {names}"
        )
    return None


# -- signing ---------------------------------------------------------------------------------


def reauthenticate(
    db: Session,
    settings: Settings,
    actor: AuditActor,
    signer: User,
    proof: Reauthentication,
    *,
    participant: Participant,
    signing: str,
) -> None:
    """Check that the signer is who is logged in (see
    :meth:`AccountService.reauthenticate`). Raises :class:`SignatureRefused` otherwise;
    a wrong password or code counts as a failed log-in attempt."""
    context = AuditContext(
        study_id=participant.study_id, site_id=participant.site_id, participant_id=participant.id
    )
    try:
        AccountService(db, settings).reauthenticate(
            actor,
            signer,
            proof,
            refused_action="signature.refused",
            context=context,
            details={"signing": signing},
        )
    except ReauthenticationRefused as refusal:
        if refusal.status == LoginStatus.LOCKED:
            until = ukdate(refusal.locked_until, with_time=True)
            raise SignatureRefused(LOCKED_ACCOUNT.format(until=until), refusal.field) from None
        message = BAD_PASSWORD if refusal.field == "password" else BAD_CODE
        raise SignatureRefused(message, refusal.field) from None


def _already_signed(
    signatures: Iterable[Signature], signer: User, meaning: SignatureMeaning
) -> Signature | None:
    for signature in signatures:
        if signature.valid and signature.signer_id == signer.id and signature.meaning == meaning:
            return signature
    return None


def sign_entry(
    db: Session,
    settings: Settings,
    actor: AuditActor,
    signer: User,
    entry: FormEntry,
    *,
    meaning: SignatureMeaning,
    proof: Reauthentication,
    shown_sha256: str,
) -> Signature:
    """The site PI signs one form entry as it was shown to them (``shown_sha256``);
    the entry becomes signed. Raises :class:`SignatureRefused`, with nothing signed,
    when the form cannot be signed, changed since it was shown, or the signer's
    password (or code) is not right."""
    participant = entry.participant
    problem = entry_signing_problem(entry)
    if problem:
        raise SignatureRefused(problem)
    content_sha256 = entry_content_sha256(entry)
    if shown_sha256 != content_sha256:
        raise SignatureRefused(CHANGED_WHILE_READING)
    role = signing_role(db, signer, participant)
    if not role:
        raise SignatureRefused(NOT_A_SIGNER)
    own = [s for s in entry_signatures(db, entry) if s.form_entry_id == entry.id]
    earlier = _already_signed(own, signer, meaning)
    if earlier is not None:
        raise SignatureRefused(
            f"You signed this form with this meaning on "
            f"{ukdate(earlier.signed_at, with_time=True)}, and that signature is valid",
            "meaning",
        )
    reauthenticate(
        db, settings, actor, signer, proof, participant=participant, signing=entry.form_key
    )
    with acting_as(db, actor):
        signature = Signature(
            participant=participant,
            entry=entry,
            signer_id=signer.id,
            signer_name=signer.full_name,
            signer_role=role,
            meaning=meaning,
            content_sha256=content_sha256,
            signed_at=utcnow(),
        )
        db.add(signature)
        entry.status = FormStatus.SIGNED
    return signature


def sign_casebook(
    db: Session,
    settings: Settings,
    actor: AuditActor,
    signer: User,
    participant: Participant,
    *,
    meaning: SignatureMeaning,
    proof: Reauthentication,
    shown_sha256: str,
) -> Signature:
    """The site PI signs a participant's whole casebook, every form of it complete, as
    it was shown to them; each complete or SDV'd form becomes signed. Refused as
    :func:`sign_entry` is, and while any form is in progress."""
    entries = casebook_entries(db, participant)
    problem = casebook_signing_problem(entries)
    if problem:
        raise SignatureRefused(problem)
    content_sha256 = casebook_content_sha256(db, participant)
    if shown_sha256 != content_sha256:
        raise SignatureRefused(CASEBOOK_CHANGED_WHILE_READING)
    role = signing_role(db, signer, participant)
    if not role:
        raise SignatureRefused(NOT_A_SIGNER)
    earlier = _already_signed(casebook_signatures(db, participant), signer, meaning)
    if earlier is not None:
        raise SignatureRefused(
            f"You signed this casebook with this meaning on "
            f"{ukdate(earlier.signed_at, with_time=True)}, and that signature is valid",
            "meaning",
        )
    reauthenticate(db, settings, actor, signer, proof, participant=participant, signing="casebook")
    with acting_as(db, actor):
        signature = Signature(
            participant=participant,
            entry=None,
            signer_id=signer.id,
            signer_name=signer.full_name,
            signer_role=role,
            meaning=meaning,
            content_sha256=content_sha256,
            signed_at=utcnow(),
        )
        db.add(signature)
        for entry in entries:
            if entry.status in (FormStatus.COMPLETE, FormStatus.VERIFIED):
                entry.status = FormStatus.SIGNED
    return signature


# -- when signed data change -------------------------------------------------------------------


def _settled_status(db: Session, entry: FormEntry) -> FormStatus:
    """What a signed entry's status is once signatures over it are invalidated: still
    signed if another valid signature covers it, else SDV'd if its whole-form SDV mark
    is current, else complete."""
    from bhp_ctms.crf.verification import current_verifications

    if any(signature.valid for signature in entry_signatures(db, entry)):
        return FormStatus.SIGNED
    if "" in current_verifications(db, entry):
        return FormStatus.VERIFIED
    return FormStatus.COMPLETE


def _changed_items(entry: FormEntry, changed_paths: set[str]) -> str:
    definition = form_definition(entry.form_version)
    order = {item.code: position for position, (_, item) in enumerate(definition.iter_items())}

    def page_order(path: str) -> tuple[int, int, str]:
        _, row, code = split_path(path)
        return (order.get(code, len(order)), row, path)

    return ", ".join(item_label(entry, path) for path in sorted(changed_paths, key=page_order))


def invalidate_signatures(db: Session, entry: FormEntry, changed_paths: set[str]) -> None:
    """Data of a form entry changed: invalidate every valid signature of the entry and
    of its participant's casebook, with a reason naming the changed items, and put
    back the status of the forms those signatures made signed."""
    if not changed_paths:
        return
    with db.no_autoflush:
        signatures = list(
            db.scalars(
                select(Signature).where(
                    Signature.invalidated_at.is_(None),
                    or_(
                        Signature.form_entry_id == entry.id,
                        and_(
                            Signature.participant_id == entry.participant_id,
                            Signature.form_entry_id.is_(None),
                        ),
                    ),
                )
            )
        )
        if not signatures and entry.status != FormStatus.SIGNED:
            return
        now = utcnow()
        items = _changed_items(entry, changed_paths)
        when_and_who = f"changed on {ukdate(now)} by {current_actor(db).name}"
        casebook_invalidated = False
        for signature in signatures:
            signature.invalidated_at = now
            if signature.form_entry_id is None:
                casebook_invalidated = True
                signature.invalidated_reason = f"{items} on {describe_entry(entry)} {when_and_who}"
            else:
                signature.invalidated_reason = f"{items} {when_and_who}"
        affected = casebook_entries(db, entry.participant) if casebook_invalidated else [entry]
        if entry not in affected:
            affected.append(entry)
        for form in affected:
            if form.status == FormStatus.SIGNED:
                form.status = _settled_status(db, form)
    db.flush()
