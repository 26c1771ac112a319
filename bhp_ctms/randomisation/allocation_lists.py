"""Making a study's allocation list (from a recorded seed, or uploaded), and what the
unblinded statistician sees of it: each stratum's size and use, and whether the stored
entries still hash to the SHA-256 recorded when the list was made."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from bhp_ctms.audit.capture import acting_as
from bhp_ctms.audit.services import AuditActor, record_event
from bhp_ctms.randomisation.methods.lists import (
    ListProblem,
    ListRow,
    generate_list,
    list_sha256,
    read_list_csv,
    strata,
)
from bhp_ctms.randomisation.models import Allocation, AllocationList, ListEntry, ListSource
from bhp_ctms.randomisation.schemes import StudyScheme

# Enough for any trial unit's list and far below what would strain a page.
MAX_PER_STRATUM = 10_000
MAX_SEED_LENGTH = 200


class ListRefused(Exception):
    """The list cannot be made; ``problems`` are (line, column, message) for an upload,
    ``field`` the form field at fault otherwise."""

    def __init__(
        self, message: str, field: str | None = None, problems: Sequence[ListProblem] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.problems = list(problems)


@dataclass(frozen=True)
class StratumUse:
    stratum: str
    label: str
    size: int
    used: int
    # Per arm, for the unblinded statistician: (arm name, in the list, allocated).
    arms: tuple[tuple[str, int, int], ...]

    @property
    def remaining(self) -> int:
        return self.size - self.used


def all_strata(bound: StudyScheme) -> list[str]:
    return strata(
        bound.scheme,
        {code: [level for level, _ in levels] for code, levels in bound.levels.items()},
    )


def replace_problem(db: Session, bound: StudyScheme, current: AllocationList | None) -> str | None:
    """Why a new list cannot replace the current one, or None."""
    if current is None:
        return None
    used = db.scalar(select(func.count(Allocation.id)).where(Allocation.study_id == bound.study.id))
    if used:
        return (
            f"{used} participants have been allocated from the current list: it can no "
            "longer be replaced"
        )
    return None


def _store(
    db: Session,
    actor: AuditActor,
    bound: StudyScheme,
    current: AllocationList | None,
    rows: Sequence[ListRow],
    *,
    source: ListSource,
    seed: str = "",
    filename: str = "",
) -> AllocationList:
    problem = replace_problem(db, bound, current)
    if problem:
        raise ListRefused(problem)
    with acting_as(db, actor):
        if current is not None:
            current.active = False
            db.flush()
        made = AllocationList(
            study_id=bound.study.id,
            method=bound.method,
            source=source,
            seed=seed,
            filename=filename,
            sha256=list_sha256(rows),
            entry_count=len(rows),
            created_by_id=actor.user_id,
        )
        db.add(made)
        db.flush()
    if rows:
        db.execute(
            insert(ListEntry),
            [
                {
                    "list_id": made.id,
                    "stratum": row.stratum,
                    "sequence": row.sequence,
                    "arm_code": row.arm,
                    "kit_code": row.kit_code or None,
                    "block": row.block,
                    "block_size": row.block_size,
                }
                for row in rows
            ],
        )
    by_stratum = Counter(row.stratum for row in rows)
    record_event(
        db,
        actor,
        "allocation_list.entries_written",
        entity_type="allocation_list",
        entity_id=made.id,
        study_id=bound.study.id,
        # Not the SHA-256: the list row's own events carry it, masked for blinded readers.
        details={"entries": len(rows), "strata": dict(by_stratum)},
    )
    return made


def generate(
    db: Session,
    actor: AuditActor,
    bound: StudyScheme,
    current: AllocationList | None,
    *,
    seed: str,
    per_stratum: int,
) -> AllocationList:
    """Generate the list from ``seed`` (the same seed gives the same list). A
    minimisation study records only its seed, from which each allocation's random draws
    are made."""
    seed = seed.strip()
    if not seed:
        raise ListRefused("Enter the seed the list is generated from", "seed")
    if len(seed) > MAX_SEED_LENGTH:
        raise ListRefused(f"The seed is longer than {MAX_SEED_LENGTH} characters", "seed")
    if not bound.list_based:
        return _store(db, actor, bound, current, [], source=ListSource.GENERATED, seed=seed)
    if not 1 <= per_stratum <= MAX_PER_STRATUM:
        raise ListRefused(
            f"Enter how many allocations each stratum needs, from 1 to {MAX_PER_STRATUM:,}",
            "per_stratum",
        )
    rows = generate_list(bound.scheme, all_strata(bound), seed, per_stratum)
    return _store(db, actor, bound, current, rows, source=ListSource.GENERATED, seed=seed)


def upload(
    db: Session,
    actor: AuditActor,
    bound: StudyScheme,
    current: AllocationList | None,
    *,
    filename: str,
    content: bytes,
) -> AllocationList:
    """Store an uploaded list (CSV: stratum, sequence, arm, kit_code) once every row is
    valid; otherwise raise with every problem, by line and column, and store nothing."""
    if not bound.list_based:
        raise ListRefused("A minimisation study has no list to upload: record its seed instead")
    if bound.scheme.seed_required:
        raise ListRefused(
            "The protocol requires the list to be generated here from a recorded seed "
            "(seed_required): an uploaded list cannot be used",
            "file",
        )
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ListRefused(
            f"The file is not UTF-8 text (byte {error.start + 1} cannot be read): save it as "
            "CSV UTF-8 and upload it again",
            "file",
        ) from None
    rows, problems = read_list_csv(text, bound.scheme, bound.scheme.arm_codes, all_strata(bound))
    if problems:
        raise ListRefused(
            f"{filename or 'The file'} has {len(problems)} problem"
            f"{'' if len(problems) == 1 else 's'}: nothing was stored",
            "file",
            problems,
        )
    if not rows:
        raise ListRefused("The file holds no allocations", "file")
    return _store(
        db, actor, bound, current, rows, source=ListSource.UPLOADED, filename=filename[:200]
    )


def stored_rows(db: Session, the_list: AllocationList) -> list[ListRow]:
    entries = db.scalars(
        select(ListEntry)
        .where(ListEntry.list_id == the_list.id)
        .order_by(ListEntry.stratum, ListEntry.sequence)
    )
    return [
        ListRow(
            stratum=entry.stratum,
            sequence=entry.sequence,
            arm=entry.arm_code,
            block=entry.block,
            block_size=entry.block_size,
            kit_code=entry.kit_code or "",
        )
        for entry in entries
    ]


def verify(db: Session, the_list: AllocationList) -> bool:
    """Whether the stored entries still hash to the SHA-256 recorded with the list."""
    return list_sha256(stored_rows(db, the_list)) == the_list.sha256


def stratum_use(db: Session, bound: StudyScheme, the_list: AllocationList) -> list[StratumUse]:
    """Each stratum's size, how much of it is used, and per arm (unblinded)."""
    listed = Counter(
        (row.stratum, row.arm_code)
        for row in db.execute(
            select(ListEntry.stratum, ListEntry.arm_code).where(ListEntry.list_id == the_list.id)
        )
    )
    allocated = Counter(
        (row.stratum, row.arm_code)
        for row in db.execute(
            select(Allocation.stratum, Allocation.arm_code).where(
                Allocation.study_id == bound.study.id
            )
        )
    )
    names = sorted({stratum for stratum, _ in listed} | {stratum for stratum, _ in allocated})
    uses = []
    for stratum in names:
        arms = tuple(
            (
                bound.arm_name(arm),
                listed[(stratum, arm)],
                allocated[(stratum, arm)],
            )
            for arm in bound.scheme.arm_codes
        )
        uses.append(
            StratumUse(
                stratum=stratum,
                label=bound.describe_stratum(stratum),
                size=sum(count for _, count, _ in arms),
                used=sum(count for _, _, count in arms),
                arms=arms,
            )
        )
    return uses
