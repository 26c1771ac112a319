"""THE WALK: with the study locked (and, separately, its participants, and their
forms), every POST route of the application, read from the route introspector, is
posted as a user who may otherwise post there, with what they would have typed on the
page before the lock. Each is refused with the clear message (409), and no clinical
row changes: no audit event on the study's participant data, no row more or less.

Twice: once as the pages refuse (early, before anything is read from the form), and
once with the pages blind to the locks, so that the flush guard alone refuses every
write. A POST route the walk cannot fill fails the test, unless the explicit list
below says why it is allowed under a lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bhp_ctms.audit.capture import change_reason
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.crf.models import (
    FormEntry,
    FormStatus,
    ItemValue,
    Query,
    QueryMessage,
    Signature,
    SourceVerification,
)
from bhp_ctms.crf.queries import close_query, raise_query
from bhp_ctms.locks import guard, state
from bhp_ctms.locks.services import LockTarget
from bhp_ctms.participants.models import (
    ConsentRecord,
    EligibilityAssessment,
    Participant,
    ParticipantIdentifiers,
    Visit,
)
from bhp_ctms.permissions import Permissions, Role
from bhp_ctms.randomisation.models import Allocation
from bhp_ctms.randomisation.services import RandomisationService
from bhp_ctms.studies.models import StudyStatus
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    ProtocolVersionFactory,
    UserFactory,
    demo_definition,
)
from tests.factories.randomisation import (
    ELIGIBLE_ANSWERS,
    SETTINGS,
    actor_of,
    eligible_participant,
    generated_list,
)
from tests.functional.helpers import login
from tests.functional.test_participant_registration import STUDY, Trial, demo_trial, staff
from tests.unit.crf.test_signatures import form_entry
from tests.unit.locks.locking import lock

# POST routes a lock leaves open, and why.
ALLOWED_UNDER_LOCK = {
    # Signing in and out, and one's own account, are no change to trial data.
    "login": "signing in",
    "login_second_factor": "signing in",
    "login_enrol": "setting up one's second factor",
    "logout": "signing out",
    "account_password": "one's own password",
    "account_enrol": "one's own second factor",
    "account_disable_second_factor": "one's own second factor",
    # Locks are how data are frozen and unfrozen (each with its e-signature).
    "lock_new": "locking more data; data already locked are refused by the lock service",
    "lock_unlock": "unlocking is how locked data may change again",
    # The audit trail is reviewed and verified, never changed.
    "audit_review_new": "a review of the audit trail, not of the data",
    "audit_verification_run": "verifying the audit trail changes nothing",
    # The data-quality run skips locked entries (tests/unit/locks/test_services.py).
    "crf_recheck": "the data-quality run leaves locked entries alone",
    # The study's set-up, not participant data: what it would change is refused.
    "crf_sdv_plan": "the SDV sample; SDV marks themselves are refused",
    "randomisation": "the allocation list; allocating from it is refused",
    "site_new": "a study's sites and their staff are not participant data",
    "site_edit": "a study's sites and their staff are not participant data",
    "site_delete": "a study's sites and their staff are not participant data",
    "site_staff_grant": "a study's sites and their staff are not participant data",
    "site_staff_revoke": "a study's sites and their staff are not participant data",
    # Emergency unblinding is for the participant's safety (bhp_ctms.locks.guard).
    "unblind": "emergency unblinding changes no data and may be needed at any time",
}
# Views that answer any method: they read, whatever the method.
READS_ANY_METHOD = {
    "__static/",
    "healthz",
    "home",
    "dashboard",
    "study",
    "study_switch",
    "protocol_diff",
    "randomisation_list",
    "randomisation_allocations",
    "randomisation_allocations_csv",
}
# Exports and snapshots read the (locked) data: that is what a lock is for.
ALLOWED_PERMISSIONS = {Permissions.DATASETS_EXPORT.value, Permissions.DATASETS_INTERIM.value}

# The data a clinical write changes: none of these rows may appear, change or go.
CLINICAL_MODELS = (
    Participant,
    ParticipantIdentifiers,
    ConsentRecord,
    EligibilityAssessment,
    Visit,
    FormEntry,
    ItemValue,
    Query,
    QueryMessage,
    SourceVerification,
    Signature,
    Allocation,
)
REFUSAL = re.compile(
    r"^(Participant|Form|Site|Study) .+ is locked \((study|site|participant|form) lock by "
    r"Dana Data, \d{1,2} \w{3} \d{4}\): nothing was saved\.$"
)


@dataclass(frozen=True)
class PostView:
    route_name: str
    pattern: str
    request_param: str | None
    permission: str | None

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.route_name, self.request_param)


def post_views(registry: Any) -> list[PostView]:
    """Every view of a route that answers POST, from the route introspector."""
    introspector = registry.introspector
    patterns = {
        r["introspectable"]["name"]: r["introspectable"]["pattern"]
        for r in introspector.get_category("routes")
    }
    found = []
    for entry in introspector.get_category("views"):
        view = entry["introspectable"]
        methods = view["request_methods"]
        if view["route_name"] is None or (methods and "POST" not in methods):
            continue
        permissions = [
            r.discriminator for r in entry["related"] if r.category_name == "permissions"
        ]
        found.append(
            PostView(
                view["route_name"],
                patterns[view["route_name"]],
                view["request_param"],
                permissions[0] if permissions else None,
            )
        )
    return found


def allowed(view: PostView) -> bool:
    return (
        view.route_name in ALLOWED_UNDER_LOCK
        or view.route_name in READS_ANY_METHOD
        or view.permission in ALLOWED_PERMISSIONS
    )


# -- the study, before the lock -------------------------------------------------------------


@dataclass
class Walked:
    trial: Trial
    dana: Any
    consented: Participant
    eligible: Participant
    randomised: Participant
    in_progress: FormEntry
    complete: FormEntry
    open_query: Query
    closed_query: Query
    assessment: EligibilityAssessment


def walked_study(db: Session) -> Walked:
    trial = demo_trial()
    dana = staff("dana", Role.DATA_MANAGER, study=trial.study)
    dana.full_name = "Dana Data"
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    priya = staff("priya", Role.SITE_PI, trial.site)
    una = staff("una", Role.STATISTICIAN_UNBLINDED, study=trial.study)
    # One user who holds every role, everywhere and at the site: no permission check
    # answers before the lock does.
    admin = UserFactory(username="admin", full_name="Ada Admin")
    for role in Role:
        MembershipFactory(user=admin, role=role)
        MembershipFactory(user=admin, role=role, study_id=trial.study.id, site_id=trial.site.id)
    generated_list(db, trial.study, una)
    # Consented, eligibility assessed but not confirmed, a form in progress.
    consented = eligible_participant(db, trial.site, cora, priya, confirmed=False)
    in_progress = form_entry(db, consented, by=cora, status=FormStatus.IN_PROGRESS)
    # Eligible and confirmed: ready to randomise.
    eligible = eligible_participant(db, trial.site, cora, priya)
    # Randomised, with a complete form, an open and a closed query on it.
    randomised = eligible_participant(db, trial.site, cora, priya)
    RandomisationService(db, SETTINGS).randomise(actor_of(cora), randomised)
    complete = form_entry(db, randomised, by=cora, status=FormStatus.COMPLETE)
    open_query = raise_query(db, actor_of(dana), complete, "weight", "Is this right?")
    closed_query = raise_query(db, actor_of(dana), complete, "weight", "Scales checked?")
    close_query(db, actor_of(dana), closed_query)
    # A protocol amendment the consented participant may move to.
    definition = demo_definition()
    definition["protocol_version"] = "2.0"
    ProtocolVersionFactory(study=trial.study, number=2, label="2.0", definition=definition)
    db.flush()
    return Walked(
        trial,
        dana,
        consented,
        eligible,
        randomised,
        in_progress,
        complete,
        open_query,
        closed_query,
        consented.eligibility_assessments[-1],
    )


# -- what a person would post on each page -----------------------------------------------------

# How wide a fill's data are: a site's (registering), a participant's, or a form's.
SITE, PARTICIPANT, ENTRY = "site", "participant", "entry"


@dataclass(frozen=True)
class Fill:
    level: str
    page: str
    action: str
    fields: dict[str, str]
    # Which of several forms posting to ``action`` (its hidden ``action`` field).
    pick: str | None = None
    # The button's value, for a form with several.
    button: str | None = None
    # Posted as they are, for a post no page offers.
    raw: dict[str, str] | None = None
    # Whether the post would write anything were the data not locked.
    writes: bool = True


def _date(name: str, when: date) -> dict[str, str]:
    return {
        f"{name}-day": str(when.day),
        f"{name}-month": str(when.month),
        f"{name}-year": str(when.year),
    }


def _participant(walked: Walked, participant: Participant, tail: str) -> str:
    return f"{STUDY}/participants/{participant.code}/{tail}"


def _entry(entry: FormEntry, tail: str) -> str:
    return f"{STUDY}/entries/{entry.id}/{tail}"


def _query(query: Query) -> str:
    return f"{STUDY}/queries/{query.id}"


FILLS: dict[tuple[str, str | None], Callable[[Walked], Fill]] = {
    ("participant_register", None): lambda w: Fill(
        SITE,
        f"{STUDY}/sites/NTH/register",
        f"{STUDY}/sites/NTH/register",
        _date("registered_on", date(2026, 3, 2)),
    ),
    ("participant_consent", None): lambda w: Fill(
        PARTICIPANT,
        _participant(w, w.consented, "consent"),
        _participant(w, w.consented, "consent"),
        _date("consented_on", date(2026, 3, 2)),
    ),
    ("participant_eligibility", None): lambda w: Fill(
        PARTICIPANT,
        _participant(w, w.consented, "eligibility"),
        _participant(w, w.consented, "eligibility"),
        {f"criterion_{code}": answer for code, answer in ELIGIBLE_ANSWERS.items()}
        | _date("assessed_on", date(2026, 3, 2)),
    ),
    ("participant_eligibility_confirm", None): lambda w: Fill(
        PARTICIPANT,
        _participant(w, w.consented, f"eligibility/{w.assessment.id}/confirm"),
        _participant(w, w.consented, f"eligibility/{w.assessment.id}/confirm"),
        {"password": PASSWORD},
    ),
    ("participant_status", None): lambda w: Fill(
        PARTICIPANT,
        _participant(w, w.consented, "status"),
        _participant(w, w.consented, "status"),
        {"status": "not_enrolled", "exclusion_reason": "declined"}
        | _date("status_on", date(2026, 3, 2)),
    ),
    ("participant_visit", None): lambda w: Fill(
        PARTICIPANT,
        _participant(w, w.consented, "visits/screening/1"),
        _participant(w, w.consented, "visits/screening/1"),
        {"status": "done"} | _date("visit_on", date(2026, 2, 3)),
    ),
    ("participant_identifiers", None): lambda w: Fill(
        PARTICIPANT,
        _participant(w, w.consented, "identifiers"),
        _participant(w, w.consented, "identifiers"),
        {"full_name": "Ann Example"},
    ),
    ("participant_protocol", None): lambda w: Fill(
        PARTICIPANT,
        _participant(w, w.consented, "protocol?to=2"),
        _participant(w, w.consented, "protocol"),
        {"reason": "Amendment 2.0 approved by the ethics committee"},
    ),
    ("randomise", None): lambda w: Fill(
        PARTICIPANT,
        _participant(w, w.eligible, "randomise"),
        _participant(w, w.eligible, "randomise"),
        {},
    ),
    ("allocation_invalidate", None): lambda w: Fill(
        PARTICIPANT,
        _participant(w, w.randomised, "allocation/invalidate"),
        _participant(w, w.randomised, "allocation/invalidate"),
        {"reason": "Randomised before consent was recorded"},
    ),
    ("crf_form", None): lambda w: Fill(
        ENTRY,
        _participant(w, w.consented, "events/baseline/1/forms/vitals"),
        _participant(w, w.consented, "events/baseline/1/forms/vitals"),
        {"weight": "81.5"},
        button="save",
    ),
    ("crf_query_new", None): lambda w: Fill(
        ENTRY,
        _entry(w.complete, "queries/new?item=weight"),
        _entry(w.complete, "queries/new?item=weight"),
        {"text": "Please check the scales."},
    ),
    ("crf_query", "action=answer"): lambda w: Fill(
        ENTRY, _query(w.open_query), _query(w.open_query), {"answer-text": "Checked."}, "answer"
    ),
    ("crf_query", "action=comment"): lambda w: Fill(
        ENTRY, _query(w.open_query), _query(w.open_query), {"comment-text": "Looking."}, "comment"
    ),
    ("crf_query", "action=close"): lambda w: Fill(
        ENTRY, _query(w.open_query), _query(w.open_query), {"close-text": "Fine."}, "close"
    ),
    ("crf_query", "action=reopen"): lambda w: Fill(
        ENTRY, _query(w.closed_query), _query(w.closed_query), {"reopen-text": "Again."}, "reopen"
    ),
    # A post naming no action: no page offers it, a script might send it. It writes
    # nothing anyway (a bad request), so only the page's own refusal can be seen.
    ("crf_query", None): lambda w: Fill(
        ENTRY,
        _query(w.open_query),
        _query(w.open_query),
        {},
        raw={"answer-text": "Checked."},
        writes=False,
    ),
    ("crf_sdv", None): lambda w: Fill(
        ENTRY,
        _entry(w.complete, "sdv"),
        _entry(w.complete, "sdv"),
        {},
        raw={"item": ""},
    ),
    ("crf_entry_sign", None): lambda w: Fill(
        ENTRY,
        _entry(w.complete, "sign"),
        _entry(w.complete, "sign"),
        {"meaning": "reviewed", "password": PASSWORD},
    ),
    # Signing a casebook signs (and so changes) each of its forms.
    ("crf_casebook_sign", None): lambda w: Fill(
        ENTRY,
        _participant(w, w.randomised, "sign"),
        _participant(w, w.randomised, "sign"),
        {"meaning": "reviewed", "password": PASSWORD},
    ),
}


def _form(page: Any, fill: Fill) -> Any:
    for form in page.forms.values():
        if form.action != fill.action:
            continue
        if fill.pick is not None and form.get("action", default=None) is None:
            continue
        if fill.pick is not None and form["action"].value != fill.pick:
            continue
        return form
    raise AssertionError(f"no form posting to {fill.action} on {fill.page}")


def what_was_typed(app: Any, fill: Fill) -> list[tuple[str, str]]:
    """What a person posts from the page as it was before the lock."""
    page = app.get(fill.page)
    if fill.raw is not None:
        token = page.html.find("input", {"name": "csrf_token"})["value"]
        return [("csrf_token", token), *fill.raw.items()]
    form = _form(page, fill)
    for name, value in fill.fields.items():
        form[name] = value
    if fill.button is not None:
        return list(form.submit_fields("action", submit_value=fill.button))
    return list(form.submit_fields())


# -- the walk ---------------------------------------------------------------------------------


def clinical_state(db: Session, study_id: int) -> dict[str, int]:
    db.expire_all()
    counts = {
        model.__tablename__: db.scalar(select(func.count()).select_from(model)) or 0
        for model in CLINICAL_MODELS
    }
    counts["audit events on participant data"] = (
        db.scalar(
            select(func.count(AuditEvent.id)).where(
                AuditEvent.study_id == study_id, AuditEvent.participant_id.is_not(None)
            )
        )
        or 0
    )
    return counts


def problems(response: Any) -> str:
    """Why a filled post was not even a write (the fill is wrong), as the page says."""
    if "html" not in response.content_type:
        return response.text[:500]
    summary = response.html.find(attrs={"data-testid": "error-summary"})
    return summary.get_text(" ", strip=True) if summary is not None else response.text[:500]


LEVELS = {
    "study": (SITE, PARTICIPANT, ENTRY),
    "participants": (PARTICIPANT, ENTRY),
    "forms": (ENTRY,),
}


def lock_for(db: Session, walked: Walked, scope: str) -> None:
    trial, dana = walked.trial, walked.dana
    if scope == "study":
        lock(db, LockTarget.of_study(trial.study), dana)
    elif scope == "participants":
        for participant in (walked.consented, walked.eligible, walked.randomised):
            lock(db, LockTarget.of_participant(trial.study, trial.site, participant), dana)
    else:
        for entry in (walked.in_progress, walked.complete):
            target = LockTarget.of_entry(trial.study, trial.site, entry.participant, entry)
            lock(db, target, dana)


@pytest.mark.parametrize("refused_by", ["pages", "guard"])
@pytest.mark.parametrize("scope", ["study", "participants", "forms"])
def test_every_post_route_is_refused_on_locked_data(
    app, db_session, monkeypatch, scope, refused_by
):
    walked = walked_study(db_session)
    views = post_views(app.app.registry)
    assert views, "no POST routes were found"
    unfilled = sorted(
        f"{view.route_name} ({view.request_param})"
        for view in views
        if not allowed(view) and view.key not in FILLS
    )
    assert not unfilled, f"the walk cannot fill these POST routes: {unfilled}"

    login(app, "admin")
    walked_views = [
        view
        for view in views
        if not allowed(view) and FILLS[view.key](walked).level in LEVELS[scope]
    ]
    typed = {view.key: what_was_typed(app, FILLS[view.key](walked)) for view in walked_views}

    lock_for(db_session, walked, scope)
    if refused_by == "guard":
        # The pages (and services) see no lock; the flush guard reads the locks itself.
        assert guard.read_active_locks is state.read_active_locks
        monkeypatch.setattr(state, "read_active_locks", lambda db, study_ids: [])
        # Nor does registration see the study's status that a study lock sets.
        with change_reason(db_session, "The walk: only the guard refuses"):
            walked.trial.study.status = StudyStatus.RECRUITING
        page = app.get(FILLS[("crf_form", None)](walked).page)
        assert "locked-banner" not in page.text, "the pages still see the lock"

    before = clinical_state(db_session, walked.trial.study.id)
    refused = []
    for view in walked_views:
        fill = FILLS[view.key](walked)
        response = app.post(fill.action, typed[view.key], expect_errors=True)
        assert clinical_state(db_session, walked.trial.study.id) == before, view
        if refused_by == "guard" and not fill.writes:
            assert response.status_int == 400, (view, response.status)
            continue
        assert response.status_int == 409, (view, response.status, problems(response))
        message = response.html.find(attrs={"data-testid": "locked-message"})
        text = message.get_text(" ", strip=True) if message is not None else ""
        assert REFUSAL.match(text), (view, text)
        refused.append(view.key)
    # Every fill for data of this level was walked, and every one that writes refused.
    expected = {key for key, fill in FILLS.items() if fill(walked).level in LEVELS[scope]}
    assert {view.key for view in walked_views} == expected
    writing = {key for key in expected if FILLS[key](walked).writes}
    assert set(refused) == (writing if refused_by == "guard" else expected)


def test_every_allowed_route_is_still_a_route(app):
    """The allow-list names only routes that exist (a renamed route is not let through)."""
    registry = app.app.registry
    names = {r["introspectable"]["name"] for r in registry.introspector.get_category("routes")}
    assert set(ALLOWED_UNDER_LOCK) <= names
    assert names >= READS_ANY_METHOD
