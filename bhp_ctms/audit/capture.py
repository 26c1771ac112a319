"""Automatic capture of every change to audited data, from the session's own changes.

A model opts in with an ``__audit__ = Audited(...)`` class attribute. From then on,
every flush that inserts, updates or deletes one of its rows writes audit events in
the same transaction, whatever code made the change: one event per changed value
(``<entity>.created`` and ``<entity>.updated``, with old and new values) and one
``<entity>.deleted`` event holding the row as it was. No view or service writes
these events itself, so none can forget to.

Some changes need a reason (any deletion, a change to completed or locked data,
unlocking, unblinding). Code supplies it with :func:`change_reason`; a flush with
such a change and no reason raises :class:`ReasonRequired` before anything is
written, and dooms the transaction, so nothing of the change reaches the database.

ORM bulk ``update()`` and ``delete()`` statements on audited tables bypass the
session's changes, so they are refused.

A model's ``details`` (the item a value belongs to) are recorded, and hashed, with
every one of its events. A column the details hold under its own name, with the value
the column is created with, is therefore not recorded a second time as a creation
event of its own: an item value's form entry, which identifies it and never changes,
travels in the details of each of its events, and replay (:mod:`bhp_ctms.audit.replay`)
takes it from there. Were such a column ever changed, the change would be an update
event like any other; a deletion's snapshot holds every column.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Mapper, Session, UOWTransaction

from bhp_ctms.audit.chain import append_rows, time_text
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.audit.spec import AuditContext, Audited, Change, ChangeKind

__all__ = [
    "AuditContext",
    "AuditError",
    "Audited",
    "Change",
    "ChangeKind",
    "ReasonRequired",
    "acting_as",
    "audit_spec",
    "audited_models",
    "audited_specs",
    "change_reason",
    "use_actor",
]
from bhp_ctms.db import ModelBase, utcnow

REASON_KEY = "bhp_ctms.audit.reason"
ACTOR_KEY = "bhp_ctms.audit.actor"
DISABLED_KEY = "bhp_ctms.audit.disabled"
UNATTRIBUTED = AuditActor.system("unattributed")


class AuditError(Exception):
    """A write that would go around the audit trail."""


class ReasonRequired(AuditError):
    """A change that needs a reason for change was made without one."""


# canonical_json's encoder, built once: a flush encodes every recorded value.
_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical_json(value: Any) -> str:
    """:func:`bhp_ctms.audit.models.canonical_json`, the same text, written directly for
    what a flush records most: a text, or details of texts and whole numbers."""
    if type(value) is str:
        return encode_basestring(value)
    if type(value) is dict:
        parts = []
        for key in sorted(value):
            item = value[key]
            if type(key) is not str:
                return _encoder.encode(value)
            if type(item) is str:
                text = encode_basestring(item)
            elif type(item) is int:
                text = int.__repr__(item)
            elif item is None:
                text = "null"
            else:
                return _encoder.encode(value)
            parts.append(f"{encode_basestring(key)}:{text}")
        return "{" + ",".join(parts) + "}"
    return _encoder.encode(value)


# Per mapped class: its audit spec, and the columns it records (the mappers are
# configured once, so neither changes while the process runs).
_SPECS: dict[type, Audited | None] = {}
_COLUMNS: dict[type, tuple[str, ...]] = {}


def audit_spec(cls: type) -> Audited | None:
    try:
        return _SPECS[cls]
    except KeyError:
        spec = getattr(cls, "__audit__", None)
        found = _SPECS[cls] = spec if isinstance(spec, Audited) else None
        return found


def _audited_columns(cls: type, spec: Audited) -> tuple[str, ...]:
    try:
        return _COLUMNS[cls]
    except KeyError:
        columns = _COLUMNS[cls] = tuple(spec.columns(inspect(cls)))
        return columns


def audited_models() -> list[type[Any]]:
    """Every audited model class, in table-name order."""
    classes = [m.class_ for m in ModelBase.registry.mappers if audit_spec(m.class_)]
    return sorted(classes, key=lambda cls: cls.__tablename__)


def audited_specs() -> list[tuple[type[Any], Audited]]:
    """Every audited model class with how it is audited, in table-name order."""
    return [(cls, cls.__audit__) for cls in audited_models()]


def audit_value(value: Any) -> Any:
    """A column value as the JSON the audit trail records."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return time_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def recorded_value(spec: Audited, name: str, value: Any) -> Any:
    """What the trail holds for a column's value: itself, or a digest of a secret."""
    value = audit_value(value)
    if name in spec.secret and value is not None:
        return "sha256:" + hashlib.sha256(str(value).encode("utf-8")).hexdigest()
    return value


@contextmanager
def _flushed_with(db: Session, key: str, value: object) -> Iterator[None]:
    """Set ``db.info[key]`` for the block, and flush its changes before unsetting it."""
    previous = db.info.get(key)
    db.info[key] = value
    try:
        yield
        db.flush()
    finally:
        db.info[key] = previous


def change_reason(db: Session, reason: str) -> AbstractContextManager[None]:
    """Give the changes flushed inside the block a reason for change."""
    return _flushed_with(db, REASON_KEY, reason.strip())


def acting_as(db: Session, actor: AuditActor) -> AbstractContextManager[None]:
    """Attribute the changes flushed inside the block to ``actor``."""
    return _flushed_with(db, ACTOR_KEY, actor)


def use_actor(db: Session, actor: AuditActor) -> None:
    """Attribute this session's changes to ``actor`` from now on (a command, a task)."""
    db.info[ACTOR_KEY] = actor


def current_actor(db: Session) -> AuditActor:
    actor = db.info.get(ACTOR_KEY)
    if actor is not None:
        return actor  # type: ignore[no-any-return]
    request = db.info.get("request")
    if request is not None:
        return request.audit_actor  # type: ignore[no-any-return]
    return UNATTRIBUTED


def _changes(session: Session, *, before_flush: bool = False) -> list[tuple[Audited, Change]]:
    """The audited rows changed in this flush, with their changed values.

    ``before_flush`` (for the reason check) leaves out the changes no reason rule looks
    at: creations and updates of models without a rule.
    """
    found: list[tuple[Audited, Change]] = []
    for kind, objects in (
        ("created", session.new),
        ("updated", session.dirty),
        ("deleted", session.deleted),
    ):
        for obj in objects:
            cls = type(obj)
            spec = audit_spec(cls)
            if spec is None:
                continue
            if before_flush and kind != "deleted" and spec.reason_rule is None:
                continue
            columns = _audited_columns(cls, spec)
            values: dict[str, tuple[Any, Any]] = {}
            if kind == "created":
                # Before the flush a new row holds only what it was given (an unset
                # column reads as None), so its instance dictionary is read directly;
                # after it, defaults and generated values are read through the ORM.
                read = obj.__dict__.get if before_flush else partial(getattr, obj)
                for name in columns:
                    new = read(name)
                    if new is not None:
                        values[name] = (None, new)
            elif kind == "updated":
                attributes = inspect(obj).attrs
                for name in columns:
                    history = attributes[name].history
                    if not history.added and not history.deleted:
                        continue
                    old = history.deleted[0] if history.deleted else None
                    new = history.added[0] if history.added else None
                    if audit_value(old) != audit_value(new):
                        values[name] = (old, new)
            else:
                values = {name: (getattr(obj, name), None) for name in columns}
            if values or kind == "deleted":
                found.append((spec, Change(obj, kind, values)))  # type: ignore[arg-type]
    found.sort(key=lambda item: (item[0].entity_type, _sort_id(item[1].obj)))
    return found


def _sort_id(obj: Any) -> int:
    return getattr(obj, "id", None) or 0


def _refuse(session: Session, message: str) -> None:
    request = session.info.get("request")
    manager = getattr(request, "tm", None) if request is not None else None
    if manager is not None:
        manager.doom()
    raise ReasonRequired(message)


@event.listens_for(Session, "before_flush")
def _check_reasons(session: Session, flush_context: UOWTransaction, instances: Any) -> None:
    if session.info.get(DISABLED_KEY):
        return
    if session.info.get(REASON_KEY):
        return
    for spec, change in _changes(session, before_flush=True):
        needed = spec.reason_needed(change)
        if needed:
            _refuse(
                session,
                f"A reason for change is required: {needed}. Give a reason and try again; "
                "nothing has been saved.",
            )


@event.listens_for(Session, "after_flush")
def _write_events(session: Session, flush_context: UOWTransaction) -> None:
    if session.info.get(DISABLED_KEY):
        return
    changes = _changes(session)
    if not changes:
        return
    actor = current_actor(session)
    reason = session.info.get(REASON_KEY) or ""
    now = utcnow()
    roles: dict[int | None, str] = {}
    rows: list[dict[str, Any]] = []
    for spec, change in changes:
        context = spec.context(change.obj)
        role = roles.get(context.study_id)
        if role is None:
            role = roles[context.study_id] = actor.role_in(context.study_id)
        details = spec.details(change.obj) if spec.details else {}
        common = {
            "occurred_at": now,
            "action": f"{spec.entity_type}.{change.kind}",
            "actor_id": actor.user_id,
            "actor_name": actor.name,
            "actor_role": role,
            "client_addr": actor.client_addr,
            "request_id": actor.request_id,
            "entity_type": spec.entity_type,
            "entity_id": str(change.obj.id),
            "study_id": context.study_id,
            "site_id": context.site_id,
            "subject_user_id": context.subject_user_id,
            "participant_id": context.participant_id,
            "form": context.form,
            "reason": reason,
            "details_json": _canonical_json(details),
        }
        if change.kind == "deleted":
            snapshot = {
                name: recorded_value(spec, name, old) for name, (old, _) in change.values.items()
            }
            rows.append(
                {**common, "field": "", "old_value": _canonical_json(snapshot), "new_value": None}
            )
            continue
        created = change.kind == "created"
        values = change.values
        if created and details:
            # What the details hold is recorded there (see the module's docstring); a
            # new row keeps at least one event of its own.
            own = {
                name: value
                for name, value in values.items()
                if not _in_details(details, name, recorded_value(spec, name, value[1]))
            }
            values = own or values
        for name, (old, new) in values.items():
            rows.append(
                {
                    **common,
                    "field": name,
                    "old_value": None
                    if created
                    else _canonical_json(recorded_value(spec, name, old)),
                    "new_value": _canonical_json(recorded_value(spec, name, new)),
                }
            )
    append_rows(session.connection(), rows)


def _in_details(details: dict[str, Any], name: str, value: Any) -> bool:
    """Whether the details hold a column's recorded value, as the same JSON."""
    if name not in details:
        return False
    held = details[name]
    return type(held) is type(value) and held == value


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_writes(orm_execute_state: Any) -> None:
    if not (orm_execute_state.is_update or orm_execute_state.is_delete):
        return
    mapper = orm_execute_state.bind_mapper
    if mapper is not None and audit_spec(mapper.class_) is not None:
        raise AuditError(
            f"bulk {'update' if orm_execute_state.is_update else 'delete'} of "
            f"{mapper.class_.__tablename__} refused: it would bypass the audit trail; "
            "load the rows and change them one by one"
        )


@event.listens_for(Mapper, "mapper_configured")
def _keep_old_values(mapper: Mapper[Any], cls: type) -> None:
    """Load a column's old value before it is overwritten, so its event has it."""
    spec = audit_spec(cls)
    if spec is None:
        return
    for name in spec.columns(mapper):
        event.listen(getattr(cls, name), "set", _noop, active_history=True)


def _noop(target: Any, value: Any, oldvalue: Any, initiator: Any) -> None:
    """An attribute listener registered only for its ``active_history``."""
