"""A blinded user never sees an arm (issue 6, acceptance 5).

Two double-blind studies whose arms have codes and names used nowhere else (ZXT:
permuted blocks stratified by site; ZXM: minimisation by site) hold allocations of
every kind: valid, unblinded in an emergency by the site PI, marked invalid by the
data manager, at the reader's site and at another. Every blinded role then walks
every GET route of the running application, its placeholders filled from those
studies (each participant's routes for each participant), and follows the links the
pages offer (CSV exports and downloads included); then it sends every randomisation
action (randomise, unblind, mark invalid, the statistician's list) with nothing filled
in, and reads the refusals and error messages. No response may name an arm: the
codes as whole words, the names in any case; nor may the email telling the trials
unit of an unblinding. A route whose placeholders the walk
cannot fill fails the test by name, so a route added later is walked too.

Links found on pages are followed once per shape: two links that differ only in
their numbers (participant numbers, record ids, page cursors) are the same view of
the same kind of record, and every allocation's own pages are start pages anyway.

The protocol's list of arms, as a whole, is not an allocation: the protocol version
page shows it, and the audit trail shows it within the protocol version's recorded
definition. Those renderings of the whole list are taken out before the search; a
single arm anywhere else, or anything else on those pages, is still a failure.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
from sqlalchemy import select

from bhp_ctms.accounts.models import Membership, User
from bhp_ctms.audit.masking import MASKED
from bhp_ctms.audit.models import canonical_json
from bhp_ctms.audit.views.trail import value_text
from bhp_ctms.crf.models import FormEntry, FormVersion, Query, QueryOrigin
from bhp_ctms.mail.models import OutboundEmail
from bhp_ctms.participants.models import EligibilityAssessment, Participant
from bhp_ctms.permissions import Role
from bhp_ctms.randomisation.models import Allocation, Unblinding
from bhp_ctms.randomisation.services import RandomisationService
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.loading import load_study
from bhp_ctms.studies.models import Study
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.factories.crf import form_entry
from tests.factories.randomisation import SETTINGS, actor_of, eligible_participant, generated_list
from tests.functional.helpers import csrf_token, form_posting_to, login
from tests.functional.test_participant_registration import demo_trial, flash, shown, staff
from tests.functional.test_route_security import route_views
from tests.functional.test_study_loading import LOADER, study_folder

ARMS = [
    {"code": "zx_active", "name": "Zexotrib 40 mg", "ratio": 1},
    {"code": "zx_placebo", "name": "Matching placebo", "ratio": 1},
]
ARM_CODES = tuple(arm["code"] for arm in ARMS)
ARM_NAMES = tuple(arm["name"] for arm in ARMS)
ARM_CODE_PATTERN = re.compile(r"\b(?:" + "|".join(ARM_CODES) + r")\b")
ARM_NAME_PATTERN = re.compile("|".join(re.escape(name) for name in ARM_NAMES), re.IGNORECASE)
# The protocol's whole list of arms as the audit trail shows it: on its pages, and in
# its CSV export (canonical JSON in a quoted cell).
PROTOCOL_ARM_LISTS = (
    html.escape(value_text(ARMS)),
    canonical_json(ARMS).replace('"', '""'),
)

DEMO_ARMS = """arms:
  - code: walking
    name: Daily walking programme
    ratio: 1
  - code: usual_care
    name: Usual care
    ratio: 1
"""
DISTINCT_ARMS = "arms:\n" + "".join(
    f"  - code: {arm['code']}\n    name: {arm['name']}\n    ratio: {arm['ratio']}\n" for arm in ARMS
)
DEMO_RANDOMISATION = """randomisation:
  method: permuted_blocks
  block_sizes: [4, 6]
  stratify_by: [site]
  # The allocation list is generated from a seed that the trial statistician keeps.
  seed_required: true
"""
MINIMISATION = """randomisation:
  method: minimisation
  factors:
    - {code: site, weight: 1}
  preferred_p: 0.8
"""

BLINDED_ROLES = [role for role in Role if role.is_blinded]
# Held for every study, as the demo grants them; the other roles per study or site.
ALL_STUDIES_ROLES = frozenset({Role.CTU_ADMIN, Role.AUDITOR})
SITE_ROLES = frozenset({Role.SITE_COORDINATOR, Role.SITE_PI})
UNBLINDING_REASON = "Severe hepatic reaction: the treating team needs the treatment given"
# A walk reads about 300 pages; one reading many more is going round in circles.
PAGE_LIMIT = 1000
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class ParticipantPlaces:
    """What fills the placeholders of one participant's routes."""

    code: str
    assessment_id: int


@dataclass(frozen=True)
class StudyPlaces:
    """What fills the placeholders of one study's routes."""

    code: str
    sites: tuple[str, ...]
    participants: tuple[ParticipantPlaces, ...]
    entry_id: int
    query_id: int
    membership_id: int


@dataclass(frozen=True)
class BlindedTrials:
    studies: tuple[StudyPlaces, ...]
    users: dict[Role, User]
    unblinded_statistician: User
    # Start pages beyond the routes: the allocations' trail and history pages.
    audit_pages: tuple[str, ...]
    # The history of the arm of a valid allocation at NTH, the blinded site staff's site.
    arm_history: str


# -- the studies --------------------------------------------------------------------------


def _member(user: User, role: Role, studies: list[Study], site_code: str = "NTH") -> None:
    if role in ALL_STUDIES_ROLES:
        MembershipFactory(user=user, role=role)
        return
    for study in studies:
        site_id = None
        if role in SITE_ROLES:
            site_id = next(site.id for site in study.sites if site.code == site_code)
        MembershipFactory(user=user, role=role, study_id=study.id, site_id=site_id)


def _places_of(db_session, participant: Participant) -> ParticipantPlaces:
    assessment_id = db_session.scalar(
        select(EligibilityAssessment.id).where(
            EligibilityAssessment.participant_id == participant.id
        )
    )
    return ParticipantPlaces(participant.code, assessment_id)


def _entry_with_query(db_session, participant: Participant) -> tuple[FormEntry, Query]:
    version = db_session.scalars(
        select(FormVersion).where(
            FormVersion.study_id == participant.study_id, FormVersion.form_code == "vitals"
        )
    ).one()
    entry = form_entry(participant, version, {"weight": "71.5"}, event="baseline")
    query = Query(entry=entry, item_path="weight", origin=QueryOrigin.MANUAL, text="Confirm.")
    db_session.add(query)
    db_session.flush()
    return entry, query


def _participant_path(study: str, participant: Participant, action: str) -> str:
    return f"/studies/{study}/participants/{participant.code}/{action}"


def _randomise_on_the_page(app, study: str, participant: Participant) -> None:
    """The coordinator randomises through the pages and is told the kit number only."""
    path = _participant_path(study, participant, "randomise")
    page = form_posting_to(app.get(path), path).submit().follow()
    assert "kit number" in flash(page)
    assert shown(page, "kit-code")
    assert arm_mentions(page.text) == []


def _unblind_on_the_page(app, study: str, participant: Participant) -> None:
    """The PI unblinds: the arm is shown to them, in that one response."""
    path = _participant_path(study, participant, "unblind")
    form = form_posting_to(app.get(path), path)
    form["reason"] = UNBLINDING_REASON
    form["password"] = PASSWORD
    page = form.submit()
    assert shown(page, "unblinded-arm") in ARM_NAMES
    assert page.headers["Cache-Control"] == "no-store"


def _invalidate_on_the_page(app, study: str, participant: Participant) -> None:
    path = _participant_path(study, participant, "allocation/invalidate")
    form = form_posting_to(app.get(path), path)
    form["reason"] = "Randomised before the PI had confirmed the right participant"
    assert "marked invalid" in flash(form.submit().follow())


def _as(app, user: User) -> None:
    app.reset()
    login(app, user.username)


def _load(db_session, tmp_path: Path, code: str, *replacements: tuple[str, str]) -> Study:
    folder = study_folder(
        tmp_path, code, ("code: DEMO", f"code: {code}"), (DEMO_ARMS, DISTINCT_ARMS), *replacements
    )
    return load_study(db_session, LOADER, folder).study


@pytest.fixture
def trials(app, db_session, tmp_path: Path) -> BlindedTrials:
    blocks = _load(db_session, tmp_path, "ZXT")
    minimised = _load(db_session, tmp_path, "ZXM", (DEMO_RANDOMISATION, MINIMISATION))
    studies = [blocks, minimised]
    users = {}
    for role in BLINDED_ROLES:
        users[role] = UserFactory(username=f"blind_{role.value}", full_name=f"Blind {role.label}")
        _member(users[role], role, studies)
    una = UserFactory(username="una", full_name="Una Unblinded")
    _member(una, Role.STATISTICIAN_UNBLINDED, studies)
    chh_coordinator = UserFactory(username="chh_coordinator", full_name="Chidi Coordinator")
    chh_pi = UserFactory(username="chh_pi", full_name="Chidi Okafor")
    _member(chh_coordinator, Role.SITE_COORDINATOR, studies, "CHH")
    _member(chh_pi, Role.SITE_PI, studies, "CHH")
    coordinator, pi = users[Role.SITE_COORDINATOR], users[Role.SITE_PI]
    service = RandomisationService(db_session, SETTINGS)

    places = []
    # ZXT: one randomised on the page, one unblinded, one marked invalid, one waiting to
    # be randomised, and one randomised at the other site. ZXM: one randomised, and one
    # randomised on the page, then unblinded, then marked invalid.
    on_the_page, to_unblind, to_invalidate = [], [], []
    for study in studies:
        generated_list(db_session, study, una, seed=f"{study.code}-seed", per_stratum=6)
        nth, chh = (
            db_session.scalars(select(Site).where(Site.study_id == study.id, Site.code == c)).one()
            for c in ("NTH", "CHH")
        )
        if study is blocks:
            people = [eligible_participant(db_session, nth, coordinator, pi) for _ in range(4)]
            at_chh = eligible_participant(db_session, chh, chh_coordinator, chh_pi)
            service.randomise(actor_of(chh_coordinator), at_chh)
            people.append(at_chh)
            randomised, (shown_kit, unblinded, invalid) = people[1:3], people[:3]
        else:
            people = [eligible_participant(db_session, nth, coordinator, pi) for _ in range(2)]
            randomised, (shown_kit, unblinded, invalid) = people[:1], [people[1]] * 3
        for participant in randomised:
            service.randomise(actor_of(coordinator), participant)
        on_the_page.append((study.code, shown_kit))
        to_unblind.append((study.code, unblinded))
        to_invalidate.append((study.code, invalid))
        entry, query = _entry_with_query(db_session, unblinded)
        membership_id = db_session.scalar(
            select(Membership.id).where(
                Membership.user_id == coordinator.id, Membership.study_id == study.id
            )
        )
        places.append(
            StudyPlaces(
                code=study.code,
                sites=("NTH", "CHH"),
                participants=tuple(_places_of(db_session, p) for p in people),
                entry_id=entry.id,
                query_id=query.id,
                membership_id=membership_id,
            )
        )
    _as(app, coordinator)
    for study_code, participant in on_the_page:
        _randomise_on_the_page(app, study_code, participant)
    _as(app, pi)
    for study_code, participant in to_unblind:
        _unblind_on_the_page(app, study_code, participant)
    _as(app, users[Role.DATA_MANAGER])
    for study_code, participant in to_invalidate:
        _invalidate_on_the_page(app, study_code, participant)
    app.reset()

    allocations = db_session.scalars(select(Allocation).order_by(Allocation.id)).all()
    assert len(allocations) == 6
    unblindings = db_session.scalars(select(Unblinding)).all()
    assert len(unblindings) == 2
    assert [allocation.valid for allocation in allocations].count(False) == 2
    codes = {study.id: study.code for study in studies}
    audit_pages = []
    for code in codes.values():
        trail = f"/studies/{code}/audit"
        audit_pages += [
            f"{trail}/?entity_type=allocation",
            f"{trail}/?entity_type=allocation&field=arm_code",
            f"{trail}/?entity_type=allocation&field=scores",
            f"{trail}/?entity_type=unblinding",
            f"{trail}/export.csv?entity_type=allocation",
        ]
    for allocation in allocations:
        history = (
            f"/studies/{codes[allocation.study_id]}/audit/history?entity_type=allocation"
            f"&entity_id={allocation.id}"
        )
        audit_pages += [history, f"{history}&field=arm_code", f"{history}&field=scores"]
    for unblinding in unblindings:
        study_code = codes[unblinding.allocation.study_id]
        audit_pages.append(
            f"/studies/{study_code}/audit/history?entity_type=unblinding&entity_id={unblinding.id}"
        )
    at_nth = next(
        allocation
        for allocation in allocations
        if allocation.valid and allocation.participant.code.startswith("ZXT-NTH")
    )
    arm_history = (
        f"/studies/ZXT/audit/history?entity_type=allocation&entity_id={at_nth.id}&field=arm_code"
    )
    return BlindedTrials(tuple(places), users, una, tuple(audit_pages), arm_history)


# -- reading what a response shows --------------------------------------------------------


def arm_mentions(text: str) -> list[str]:
    """Each place the text names an arm, with a little of the text around it."""
    found = []
    for pattern in (ARM_CODE_PATTERN, ARM_NAME_PATTERN):
        for match in pattern.finditer(text):
            around = text[max(match.start() - 80, 0) : match.end() + 80]
            found.append(" ".join(around.split()))
    return found


def readable_text(response: Any) -> str:
    """A response's body as text, whatever its type (pages, CSV, JSON, files)."""
    if response.status_int in REDIRECTS or not response.body:
        return ""
    return response.body.decode(response.charset or "utf-8", errors="replace")


PROTOCOL_VERSION_PAGE = re.compile(r"^/studies/[^/?]+/protocol/\d+/$")
ARMS_TABLE = re.compile(r'<table[^>]*data-testid="arms".*?</table>', re.DOTALL)


def without_the_protocols_arm_list(path: str, text: str) -> str:
    """The text without the renderings of the protocol's whole list of arms."""
    if PROTOCOL_VERSION_PAGE.match(path):
        text, tables = ARMS_TABLE.subn("", text)
        assert tables == 1, f"{path}: the protocol's table of arms has moved"
    for rendering in PROTOCOL_ARM_LISTS:
        text = text.replace(rendering, "")
    return text


# -- the walk -----------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{(\w+)\}|\*(\w+)")
KNOWN_PLACEHOLDERS = frozenset(
    {
        "code",
        "site",
        "participant",
        "assessment",
        "membership",
        "event",
        "instance",
        "form",
        "version",
        "entry",
        "query",
        "subpath",
    }
)
HREF = re.compile(r'\bhref="([^"]*)"')


def get_routes(registry: Any) -> dict[str, str]:
    """The pattern of every route a GET reaches, by route name."""
    return {
        view.route_name: view.pattern for view in route_views(registry) if "GET" in view.methods
    }


def randomisation_actions(registry: Any) -> dict[str, str]:
    """The pattern of every route that acts on randomisation by POST, by route name."""
    return {
        view.route_name: view.pattern
        for view in route_views(registry)
        if "POST" in view.methods and (view.permission or "").startswith("randomisation:")
    }


def filled_paths(name: str, pattern: str, studies: tuple[StudyPlaces, ...]) -> Iterator[str]:
    """The route's pattern filled in every way the studies offer; fails, naming the
    route, on a placeholder it does not know."""
    names = {a or b for a, b in PLACEHOLDER.findall(pattern)}
    unknown = names - KNOWN_PLACEHOLDERS
    assert not unknown, (
        f"route {name} ({pattern}): the blinding walk cannot fill {sorted(unknown)}; teach "
        "tests/functional/test_blinding.py where to find them"
    )
    if "code" not in names:
        yield _path(pattern, {"subpath": "css/app.css"})
        return
    for study in studies:
        sites = study.sites if "site" in names else ("",)
        people = study.participants if names & {"participant", "assessment"} else (None,)
        for site, person in product(sites, people):
            values = {
                "code": study.code,
                "site": site,
                "participant": person.code if person else "",
                "assessment": str(person.assessment_id) if person else "",
                "membership": str(study.membership_id),
                "event": "baseline",
                "instance": "1",
                "form": "vitals",
                "version": "1",
                "entry": str(study.entry_id),
                "query": str(study.query_id),
            }
            yield _path(pattern, values)


def _path(pattern: str, values: dict[str, str]) -> str:
    path = PLACEHOLDER.sub(lambda match: values[match.group(1) or match.group(2)], pattern)
    return path if path.startswith("/") else "/" + path


def _internal(base: str, href: str) -> str | None:
    """A link's path and query inside the application; None for anything else (other
    sites, static files, e-mail addresses, an anchor on the page)."""
    parts = urlsplit(urljoin(base, html.unescape(href)))
    if parts.scheme not in ("http", "https") or parts.netloc not in ("", "localhost"):
        return None
    if parts.path.startswith("/static/"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _links(response: Any, path: str) -> Iterator[str]:
    base = "http://localhost" + path
    if response.status_int in REDIRECTS:
        hrefs = [response.headers.get("Location", "")]
    elif response.content_type == "text/html":
        hrefs = HREF.findall(response.text)
    else:
        return
    for href in hrefs:
        link = _internal(base, href)
        if link is not None:
            yield link


def shape(link: str) -> str:
    """What makes a link a new page to read: its path, but not the numbers in it
    (record ids, participants' numbers); which parameters it has, but not their values
    (page cursors, filters, fields), except the type of record whose history it shows.
    """
    path, _, query = link.partition("?")
    parameters = sorted(
        name if name != "entity_type" else f"{name}={value}"
        for name, value in parse_qsl(query, keep_blank_values=True)
    )
    return re.sub(r"\d+", "#", path) + "?" + "&".join(parameters)


@dataclass
class Walk:
    """The pages one reader reached, and where any of them named an arm."""

    role: str
    statuses: dict[int, int] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return sum(self.statuses.values())

    def summary(self) -> str:
        return f"{self.role}: {self.pages} pages, by status {dict(sorted(self.statuses.items()))}"


def _read(done: Walk, method: str, path: str, response: Any) -> None:
    done.statuses[response.status_int] = done.statuses.get(response.status_int, 0) + 1
    if response.status_int >= 500:
        done.errors.append(f"{done.role} {method} {path}: {response.status}")
        return
    text = without_the_protocols_arm_list(path, readable_text(response))
    for mention in arm_mentions(text):
        done.leaks.append(f"{done.role} {method} {path} ({response.status}): ...{mention}...")


def act(app: Any, done: Walk, actions: list[str]) -> None:
    """Send each randomisation action with nothing filled in, and read the answer: a
    refusal, a form's errors, or the page it leads to (with its message)."""
    token = csrf_token(app)
    for path in actions:
        response = app.post(path, {"csrf_token": token}, expect_errors=True)
        _read(done, "POST", path, response)
        if response.status_int in REDIRECTS:
            followed = response.follow(expect_errors=True)
            _read(done, "GET", followed.request.path_qs, followed)


def walk(app: Any, role: str, start: list[str]) -> Walk:
    """Read every start page, then every page of a new shape linked from those read."""
    done = Walk(role)
    shapes = {shape(path) for path in start}
    queue = deque(dict.fromkeys(start))
    while queue:
        path = queue.popleft()
        assert done.pages < PAGE_LIMIT, f"{role}: over {PAGE_LIMIT} pages, at {path}"
        response = app.get(path, expect_errors=True)
        _read(done, "GET", path, response)
        for link in _links(response, path):
            if shape(link) not in shapes:
                shapes.add(shape(link))
                queue.append(link)
    return done


# -- the tests ----------------------------------------------------------------------------


def _shows_the_arm_masked(app: Any, role: Role, history: str) -> bool:
    """Whether the arm's history shows the reader the value masked (False: they may not
    read the audit trail)."""
    page = app.get(history, expect_errors=True)
    if page.status_int == 403:
        return False
    values = [span.get_text(strip=True) for span in page.html.select('[data-testid="new-value"]')]
    assert values == [MASKED], (role, values)
    return True


def test_no_blinded_role_sees_an_arm_anywhere(app, db_session, trials):
    # The search finds the arms where they are shown: to the unblinded statistician.
    _as(app, trials.unblinded_statistician)
    for study in trials.studies:
        report = app.get(f"/studies/{study.code}/randomisation/allocations")
        arms = [cell.get_text(strip=True) for cell in report.html.select('[data-testid="arm"]')]
        assert arms and set(arms) <= set(ARM_NAMES), arms
        assert arm_mentions(report.text)
        exported = app.get(f"/studies/{study.code}/randomisation/allocations.csv")
        assert arm_mentions(readable_text(exported))

    start = [
        path
        for name, pattern in sorted(get_routes(app.app.registry).items())
        for path in filled_paths(name, pattern, trials.studies)
    ]
    start += trials.audit_pages
    actions = [
        path
        for name, pattern in sorted(randomisation_actions(app.app.registry).items())
        for path in filled_paths(name, pattern, trials.studies)
    ]
    walks, audit_readers = [], []
    for role in BLINDED_ROLES:
        _as(app, trials.users[role])
        if _shows_the_arm_masked(app, role, trials.arm_history):
            audit_readers.append(role)
        done = walk(app, role.value, start)
        act(app, done, actions)
        walks.append(done)
    summary = "\n".join(w.summary() for w in walks)
    errors = [error for w in walks for error in w.errors]
    assert not errors, "server errors:\n" + "\n".join(errors)
    leaks = [leak for w in walks for leak in w.leaks]
    assert not leaks, f"a blinded role was shown an arm ({len(leaks)} times):\n" + "\n".join(
        [*leaks[:40], summary]
    )
    # Each reader read the studies' pages, not only refusals.
    for w in walks:
        assert w.statuses.get(200, 0) >= 15, summary
    assert audit_readers == [role for role in BLINDED_ROLES if role != Role.STATISTICIAN_BLINDED]

    # The trials unit is told of each unblinding, without the arm.
    emails = db_session.scalars(
        select(OutboundEmail).where(OutboundEmail.kind == "unblinding")
    ).all()
    assert len(emails) == 2
    for email in emails:
        assert "emergency unblinding" in email.subject
        assert UNBLINDING_REASON in email.body
        assert arm_mentions(f"{email.subject}\n{email.body}") == []


def test_no_blinded_reader_gets_what_would_rebuild_the_allocation_list(app, db_session):
    """The list is made from a seed by a published algorithm: its seed, even as a
    digest (a seed people choose is soon guessed from one), or its SHA-256 (enough to
    check guesses at a list without kit numbers) would give a blinded reader every
    participant's arm. The trail keeps both; blinded readers see them masked."""
    trial = demo_trial()
    una = staff("una", Role.STATISTICIAN_UNBLINDED, study=trial.study)
    seed = "walk-2026"
    made = generated_list(db_session, trial.study, una, seed=seed)
    oracles = {
        "the seed's digest": hashlib.sha256(seed.encode("utf-8")).hexdigest(),
        "the list's SHA-256": made.sha256,
    }
    trail = f"/studies/{trial.study.code}/audit"
    pages = [
        f"{trail}/?entity_type=allocation_list",
        f"{trail}/history?entity_type=allocation_list&entity_id={made.id}",
        f"{trail}/export.csv?entity_type=allocation_list",
    ]
    shown_to = []
    for role in BLINDED_ROLES:
        reader = staff(f"reader_{role.value}", role, study=trial.study)
        _as(app, reader)
        for path in pages:
            text = readable_text(app.get(path, expect_errors=True))
            shown_to += [
                f"{role.value} GET {path}: {name}"
                for name, digest in oracles.items()
                if digest[:12] in text
            ]
    assert shown_to == []
