"""Synthetic but realistic audit events: data entry on case report forms.

Each save of a form by a site's staff member gives one event per changed item, all
with the save's time, request id and actor, as the automatic capture writes them:
creations (a new value), corrections (old and new value, often with a reason) and
signatures (details only). Participants are chosen with a skewed weight, so a few
have long histories and most have short ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from operator import itemgetter
from typing import Any

from benchmarks.scratch import EVENT_COLUMNS
from bhp_ctms.audit.chain import GENESIS_HASH, chain_of, hash_values
from bhp_ctms.audit.models import canonical_json

FIRST_NAMES = (
    "Kagiso", "Naledi", "Thabo", "Boitumelo", "Lesego", "Onalenna", "Mpho", "Tebogo",
    "Kefilwe", "Goitseone", "Neo", "Tshepo", "Masego", "Oratile", "Refilwe", "Keabetswe",
    "Amara", "Joseph", "Grace", "Samuel", "Ruth", "David", "Esther", "Peter",
)  # fmt: skip
SURNAMES = (
    "Molefe", "Dube", "Kgosi", "Mokgethi", "Sebego", "Ntshole", "Moatlhodi", "Seretse",
    "Gaolathe", "Masire", "Phiri", "Banda", "Mothibi", "Tau", "Nkwe", "Modise",
)  # fmt: skip
ENTRY_ROLES = ("site_coordinator", "site_coordinator", "site_pi", "data_manager")
CORRECTION_REASONS = (
    "Transcription error corrected against source document",
    "Value re-measured per protocol section 8.2",
    "Response to data query",
    "Wrong visit selected at entry",
    "Unit conversion error (mmol/L entered as mg/dL)",
    "Source document verified by monitor; entry corrected",
)


def _integer(low: int, high: int) -> Callable[[random.Random], Any]:
    return lambda rng: rng.randint(low, high)


def _decimal(low: float, high: float, places: int) -> Callable[[random.Random], Any]:
    return lambda rng: round(rng.uniform(low, high), places)


def _choice(*options: str) -> Callable[[random.Random], Any]:
    return lambda rng: rng.choice(options)


def _date(rng: random.Random) -> str:
    return f"20{rng.randint(24, 26)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _text(rng: random.Random) -> str:
    return rng.choice(
        (
            "Participant reports mild headache since last visit",
            "No concerns raised",
            "Missed dose on day 3, resumed next day",
            "Rash on left forearm, resolving",
            "Referred to clinic for follow-up",
        )
    )


# Form key -> item name -> how its values look.
FORMS: dict[str, dict[str, Callable[[random.Random], Any]]] = {
    "screening": {
        "consent_date": _date,
        "age_years": _integer(18, 65),
        "sex": _choice("F", "M"),
        "hiv_status": _choice("positive", "negative", "unknown"),
        "eligible": _choice("yes", "no"),
    },
    "vital_signs": {
        "visit_date": _date,
        "systolic_bp": _integer(90, 180),
        "diastolic_bp": _integer(55, 110),
        "pulse": _integer(48, 120),
        "temperature_c": _decimal(35.5, 39.5, 1),
        "weight_kg": _decimal(40, 120, 1),
        "height_cm": _integer(145, 195),
    },
    "haematology": {
        "sample_date": _date,
        "haemoglobin_g_dl": _decimal(7, 17, 1),
        "wbc_10e9_l": _decimal(2, 14, 1),
        "platelets_10e9_l": _integer(90, 450),
        "cd4_cells_ul": _integer(50, 1500),
    },
    "adverse_event": {
        "ae_term": _choice("Headache", "Nausea", "Rash", "Fatigue", "Diarrhoea", "Dizziness"),
        "onset_date": _date,
        "severity_grade": _integer(1, 4),
        "serious": _choice("no", "no", "no", "yes"),
        "outcome": _choice("recovered", "recovering", "not recovered", "unknown"),
        "narrative": _text,
    },
    "concomitant_medication": {
        "drug_name": _choice("Paracetamol", "Cotrimoxazole", "Isoniazid", "Ibuprofen"),
        "dose_mg": _integer(100, 1000),
        "start_date": _date,
        "ongoing": _choice("yes", "no"),
    },
    "visit_notes": {"visit_date": _date, "notes": _text},
}
FORM_KEYS = tuple(FORMS)


@dataclass(frozen=True)
class Participant:
    id: int
    study_id: int
    site_id: int


@dataclass(frozen=True)
class Actor:
    id: int
    name: str
    role: str


def make_participants(
    rng: random.Random, count: int, sites_by_study: Mapping[int, Sequence[int]]
) -> tuple[list[Participant], list[float]]:
    """``count`` participants spread over the studies' sites, and skewed cumulative weights.

    The weights are log-normal: the busiest participants have tens of times the
    median's events (long follow-up, many adverse events), most have few.
    """
    study_ids = sorted(sites_by_study)
    participants = []
    for number in range(count):
        study_id = study_ids[number % len(study_ids)]
        site_id = rng.choice(sites_by_study[study_id])
        participants.append(Participant(number + 1, study_id, site_id))
    weights = [rng.lognormvariate(0, 1.2) for _ in participants]
    return participants, list(accumulate(weights))


def make_actors(rng: random.Random, count: int = 80) -> list[Actor]:
    return [
        Actor(100 + n, f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}", rng.choice(ENTRY_ROLES))
        for n in range(count)
    ]


def form_saves(
    rng: random.Random,
    participants: Sequence[Participant],
    cumulative_weights: Sequence[float],
    start: datetime,
    study_event_share: float = 0.02,
) -> Iterator[dict[str, Any]]:
    """An endless stream of events (hashed fields but chain, sequence and hashes).

    A ``study_event_share`` of them belong to no participant (exports of the trail,
    verification runs), as a study's trail has.
    """
    actors = make_actors(rng)
    moment = start
    choose = rng.choices
    while True:
        moment += timedelta(seconds=rng.expovariate(1 / 40))
        if rng.random() < study_event_share:
            yield _study_event(rng, moment, rng.choice(actors), rng.choice(participants).study_id)
            continue
        participant = choose(participants, cum_weights=cumulative_weights)[0]
        # Mostly one of the site's three staff; now and then a data manager elsewhere.
        if rng.random() < 0.9:
            actor = actors[(participant.site_id * 3 + rng.randrange(3)) % len(actors)]
        else:
            actor = rng.choice(actors)
        form = rng.choice(FORM_KEYS)
        items = FORMS[form]
        roll = rng.random()
        common = {
            "occurred_at": moment,
            "actor_id": actor.id,
            "actor_name": actor.name,
            "actor_role": actor.role,
            "client_addr": f"10.{participant.site_id % 250}.0.{actor.id % 250}",
            "request_id": f"{rng.getrandbits(128):032x}",
            "entity_type": "form_entry",
            "entity_id": str(participant.id * 10 + FORM_KEYS.index(form)),
            "study_id": participant.study_id,
            "site_id": participant.site_id,
            "subject_user_id": None,
            "participant_id": participant.id,
            "form": form,
        }
        if roll < 0.08:
            yield {
                **common,
                "action": "form_entry.signed",
                "field": "",
                "old_value": None,
                "new_value": None,
                "reason": "",
                "details_json": canonical_json(
                    {
                        "meaning": "I confirm the data on this form are complete and accurate",
                        "signature_id": rng.randint(1, 10**6),
                    }
                ),
            }
            continue
        created = roll < 0.45
        names = rng.sample(
            list(items), k=len(items) if created else rng.randint(1, min(3, len(items)))
        )
        reason = "" if created or rng.random() < 0.6 else rng.choice(CORRECTION_REASONS)
        for name in names:
            value = items[name]
            yield {
                **common,
                "action": "form_entry.created" if created else "form_entry.updated",
                "field": name,
                "old_value": None if created else canonical_json(value(rng)),
                "new_value": canonical_json(value(rng)),
                "reason": reason,
                "details_json": "{}",
            }


def _study_event(
    rng: random.Random, moment: datetime, actor: Actor, study_id: int
) -> dict[str, Any]:
    exported = rng.random() < 0.7
    return {
        "occurred_at": moment,
        "action": "audit.exported" if exported else "audit.verification_requested",
        "actor_id": actor.id,
        "actor_name": actor.name,
        "actor_role": "monitor",
        "client_addr": f"10.0.0.{actor.id % 250}",
        "request_id": f"{rng.getrandbits(128):032x}",
        "entity_type": "",
        "entity_id": "",
        "study_id": study_id,
        "site_id": None,
        "subject_user_id": None,
        "participant_id": None,
        "form": "",
        "field": "",
        "old_value": None,
        "new_value": None,
        "reason": "",
        "details_json": canonical_json(
            {"events": rng.randint(100, 50_000), "filters": {"form": rng.choice(FORM_KEYS)}}
            if exported
            else {"verification_id": rng.randint(1, 500)}
        ),
    }


# An event's values, in EVENT_COLUMNS order, as the tuple COPY takes.
_row = itemgetter(*("details_json" if name == "details" else name for name in EVENT_COLUMNS))


def sealed_rows(
    events: Iterator[dict[str, Any]],
    study_id: int,
    count: int,
    sequence: int = 0,
    previous_hash: str = GENESIS_HASH,
) -> Iterator[tuple[Any, ...]]:
    """``count`` events appended to one study's chain after ``sequence``, validly hashed."""
    chain = chain_of(study_id)
    for _ in range(count):
        values = next(events)
        sequence += 1
        values.update(
            study_id=study_id, chain=chain, sequence=sequence, previous_hash=previous_hash
        )
        values["event_hash"] = previous_hash = hash_values(values)
        yield _row(values)


def unsealed_rows(events: Iterator[dict[str, Any]], count: int) -> Iterator[tuple[Any, ...]]:
    """``count`` events in their studies' chains with unique sequences but dummy hashes."""
    sequences: dict[str, int] = {}
    for number in range(count):
        values = next(events)
        chain = chain_of(values["study_id"])
        sequences[chain] = sequence = sequences.get(chain, 0) + 1
        values.update(
            chain=chain,
            sequence=sequence,
            previous_hash=f"{number:064x}",
            event_hash=f"{number + 1:064x}",
        )
        yield _row(values)
