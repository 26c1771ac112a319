"""Replaying the audit trail to rebuild current values, and comparing them with the tables.

Every change to audited data reaches the trail through the automatic capture, so the
trail alone determines what every audited row should hold now. A row inserted,
changed or deleted around the application (by SQL typed at a database prompt, say)
disagrees with its replayed state, and is reported with the event that last set the
value it should have.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.audit.capture import audited_specs, recorded_value
from bhp_ctms.audit.chain import chain_of
from bhp_ctms.audit.models import AuditEvent, canonical_json
from bhp_ctms.audit.spec import Audited

NULL = canonical_json(None)
EntityKey = tuple[str, str]


@dataclass
class EntityState:
    """What the trail says one row holds, and which event set each value."""

    values: dict[str, str] = field(default_factory=dict)
    set_by: dict[str, int] = field(default_factory=dict)
    last_event_id: int = 0
    deleted_by: int | None = None


@dataclass(frozen=True)
class ReplayProblem:
    entity_type: str
    entity_id: str
    field: str
    event_id: int | None
    message: str

    def __str__(self) -> str:
        where = f", event {self.event_id}" if self.event_id is not None else ""
        name = f" {self.field}" if self.field else ""
        return f"{self.entity_type} {self.entity_id}{name}{where}: {self.message}"


def _change_actions() -> dict[str, tuple[str, frozenset[str]]]:
    """Each change action: its kind, and the columns its events' details may hold (the
    columns of a model with details, which capture records there on creation)."""
    actions = {}
    for cls, spec in audited_specs():
        in_details = frozenset(spec.columns(cls.__mapper__)) if spec.details else frozenset()
        for kind in ("created", "updated", "deleted"):
            actions[f"{spec.entity_type}.{kind}"] = (kind, in_details)
    return actions


def rebuild(
    db: Session, study_id: int | None = None, *, all_chains: bool = True
) -> dict[EntityKey, EntityState]:
    """Every audited row's values as the trail has them (deleted rows included, marked)."""
    actions = _change_actions()
    statement = (
        select(
            AuditEvent.id,
            AuditEvent.action,
            AuditEvent.entity_type,
            AuditEvent.entity_id,
            AuditEvent.field,
            AuditEvent.new_value,
            AuditEvent.details_json,
        )
        .where(AuditEvent.action.in_(actions))
        .order_by(AuditEvent.id)
        .execution_options(yield_per=10_000)
    )
    if not all_chains:
        statement = statement.where(AuditEvent.chain == chain_of(study_id))
    states: dict[EntityKey, EntityState] = {}
    for event_id, action, entity_type, entity_id, name, new_value, details in db.execute(statement):
        kind, in_details = actions[action]
        key = (entity_type, entity_id)
        state = states.get(key)
        if state is None or (kind == "created" and state.deleted_by is not None):
            state = states[key] = EntityState()  # ids may be reused after a deletion
        state.last_event_id = event_id
        if kind == "deleted":
            state.deleted_by = event_id
            continue
        if in_details and details != "{}":
            _values_from_details(state, event_id, details, in_details)
        state.values[name] = new_value if new_value is not None else NULL
        state.set_by[name] = event_id
    return states


def _values_from_details(
    state: EntityState, event_id: int, details: str, columns: frozenset[str]
) -> None:
    """The columns an event's details hold (an item value's form entry and item path)."""
    try:
        held = json.loads(details)
    except ValueError:
        return  # an edited event: verifying the chain reports it
    if not isinstance(held, dict):
        return
    for name in columns.intersection(held):
        state.values[name] = canonical_json(held[name])
        state.set_by[name] = event_id


def _live_rows(
    db: Session, study_id: int | None, all_chains: bool
) -> Iterator[tuple[Audited, EntityKey, dict[str, str]]]:
    for cls, spec in audited_specs():
        columns = spec.columns(cls.__mapper__)
        for obj in db.scalars(select(cls).execution_options(populate_existing=True)):
            if not all_chains and spec.context(obj).study_id != study_id:
                continue
            values = {
                name: canonical_json(recorded_value(spec, name, getattr(obj, name)))
                for name in columns
            }
            yield spec, (spec.entity_type, str(obj.id)), values


def compare(
    db: Session, study_id: int | None = None, *, all_chains: bool = True
) -> list[ReplayProblem]:
    """Differences between the replayed trail and the live tables, in a stable order."""
    states = rebuild(db, study_id, all_chains=all_chains)
    problems: list[ReplayProblem] = []
    seen: set[EntityKey] = set()
    for _spec, key, live in _live_rows(db, study_id, all_chains):
        seen.add(key)
        state = states.get(key)
        if state is None:
            problems.append(
                ReplayProblem(
                    *key,
                    "",
                    None,
                    "is in the database but the audit trail never recorded it "
                    "(inserted outside the application)",
                )
            )
            continue
        if state.deleted_by is not None:
            problems.append(
                ReplayProblem(
                    *key,
                    "",
                    state.deleted_by,
                    "is in the database but the audit trail recorded its deletion "
                    "(restored outside the application)",
                )
            )
            continue
        for name, value in live.items():
            expected = state.values.get(name, NULL)
            if value != expected:
                problems.append(
                    ReplayProblem(
                        *key,
                        name,
                        state.set_by.get(name),
                        f"the database holds {value} but the audit trail says {expected} "
                        "(changed outside the application)",
                    )
                )
    for key, state in states.items():
        if key not in seen and state.deleted_by is None:
            problems.append(
                ReplayProblem(
                    *key,
                    "",
                    state.last_event_id,
                    "is missing from the database but the audit trail never recorded its "
                    "deletion (deleted outside the application)",
                )
            )
    problems.sort(key=lambda problem: (problem.event_id or 0, problem.entity_type))
    return problems


def live_state(
    db: Session, study_id: int | None = None, *, all_chains: bool = True
) -> dict[EntityKey, dict[str, str]]:
    """The audited rows as the tables hold them, in the trail's recorded form."""
    return {key: values for _spec, key, values in _live_rows(db, study_id, all_chains)}


def replayed_state(
    db: Session, study_id: int | None = None, *, all_chains: bool = True
) -> dict[EntityKey, dict[str, str]]:
    """The audited rows as the trail rebuilds them, with every audited column."""
    columns = {spec.entity_type: spec.columns(cls.__mapper__) for cls, spec in audited_specs()}
    return {
        key: {name: state.values.get(name, NULL) for name in columns[key[0]]}
        for key, state in rebuild(db, study_id, all_chains=all_chains).items()
        if state.deleted_by is None
    }
