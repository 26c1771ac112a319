"""Reviews of the audit trail: signed with the reviewer's password, listed in the log,
and what is "not reviewed since its last change" — through the pages, as people use them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bhp_ctms.audit.models import AuditEvent, AuditReview
from bhp_ctms.audit.reviews import SIGNATURE_MEANING, period_bounds
from bhp_ctms.db import utcnow
from bhp_ctms.permissions import Role
from tests.factories import PASSWORD, MembershipFactory, SiteFactory, StudyFactory, UserFactory
from tests.functional.helpers import csrf_token, form_posting_to, login

WRONG_PASSWORD = "not-my-password-at-all"


@pytest.fixture
def study(db_session: Any) -> Any:
    study = StudyFactory(code="REV")
    SiteFactory(study=study, code="ALP", name="Alpha Hospital")
    SiteFactory(study=study, code="BET", name="Beta Infirmary")
    return study


def _site(study: Any, code: str) -> Any:
    return next(site for site in study.sites if site.code == code)


def _member(username: str, role: Role, study: Any, site: Any = None) -> Any:
    user = UserFactory(username=username)
    MembershipFactory(
        user=user, role=role, study_id=study.id, site_id=None if site is None else site.id
    )
    return user


def _fill_review(
    page: Any,
    *,
    site: Any = None,
    findings: str = "Checked every change; nothing untoward.",
    password: str | None = None,
    start: date | None = None,
    end: date | None = None,
    participant_id: str = "",
    form_key: str = "",
) -> Any:
    today = utcnow().date()
    start = start or today - timedelta(days=7)
    end = end or today
    form = form_posting_to(page, page.request.path)
    form["site_id"] = "" if site is None else str(site.id)
    form["participant_id"] = participant_id
    form["form_key"] = form_key
    for name, moment in (("period_start", start), ("period_end", end)):
        form[f"{name}-day"] = str(moment.day)
        form[f"{name}-month"] = str(moment.month)
        form[f"{name}-year"] = str(moment.year)
    form["findings"] = findings
    form["password"] = PASSWORD if password is None else password
    form["confirm"] = True
    return form


def _record_review(app: Any, study: Any, **values: Any) -> Any:
    page = app.get(f"/studies/{study.code}/audit/reviews/new")
    return _fill_review(page, **values).submit()


def _unreviewed_labels(page: Any) -> list[str]:
    table = page.html.find("table", {"data-testid": "unreviewed"})
    if table is None:
        return []
    return [
        row.find("th").get_text(" ", strip=True).removeprefix("Scope ").strip()
        for row in table.find("tbody").find_all("tr")
    ]


def _review_events(db_session: Any, action: str) -> int:
    return db_session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == action))


def test_a_monitor_records_a_signed_review_that_appears_in_the_log(app, db_session, study):
    alpha = _site(study, "ALP")
    monitor = _member("monica", Role.MONITOR, study)
    login(app, "monica")
    at_alpha = select(AuditEvent.id).where(AuditEvent.site_id == alpha.id)
    events_at_alpha = list(db_session.scalars(at_alpha))

    response = _record_review(app, study, site=alpha, findings="Alpha's changes all explained.")

    assert response.status_int == 303
    log = response.follow()
    assert "is recorded and signed" in log.html.find(attrs={"data-testid": "flash"}).text
    row = log.html.find("table", {"data-testid": "reviews"}).find("tbody").find("tr")
    text = row.get_text(" ", strip=True)
    assert "Alpha's changes all explained." in text
    assert "ALP \N{EN DASH} Alpha Hospital" in text and monitor.full_name in text
    review = db_session.scalars(select(AuditReview)).one()
    assert (review.study_id, review.site_id, review.reviewer_id) == (study.id, alpha.id, monitor.id)
    assert review.last_event_id == max(events_at_alpha)
    assert review.events_reviewed == len(events_at_alpha)
    start, end = period_bounds(utcnow().date() - timedelta(days=7), utcnow().date())
    assert (review.period_start, review.period_end) == (start, end)
    created = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "audit_review.created")
    ).all()
    assert created and all(event.entity_id == str(review.id) for event in created)
    assert {event.actor_id for event in created} == {monitor.id}
    signed = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "audit_review.signed")
    ).one()
    assert signed.details["meaning"] == SIGNATURE_MEANING
    assert signed.details["signer_name"] == monitor.full_name


def test_a_wrong_password_refuses_the_review_keeps_what_was_typed_and_writes_nothing(
    app, db_session, study
):
    beta = _site(study, "BET")
    _member("monica", Role.MONITOR, study)
    login(app, "monica")
    page = app.get(f"/studies/{study.code}/audit/reviews/new")
    form = _fill_review(
        page,
        site=beta,
        findings="Two late entries at Beta.",
        password=WRONG_PASSWORD,
        start=date(2025, 3, 1),
        end=date(2025, 3, 31),
        participant_id="42",
        form_key="vital_signs",
    )

    response = form.submit()

    assert response.status_int == 200
    summary = response.html.find(attrs={"data-testid": "error-summary"})
    assert "Your password is not right" in summary.text
    assert summary.find("a", string=lambda s: s and "password" in s)["href"] == "#password"
    assert "Your password is not right" in response.html.find(id="password-error").text
    kept = form_posting_to(response, page.request.path)
    assert kept["site_id"].value == str(beta.id)
    assert kept["participant_id"].value == "42"
    assert kept["form_key"].value == "vital_signs"
    assert [kept[f"period_start-{part}"].value for part in ("day", "month", "year")] == [
        "1",
        "3",
        "2025",
    ]
    assert [kept[f"period_end-{part}"].value for part in ("day", "month", "year")] == [
        "31",
        "3",
        "2025",
    ]
    assert kept["findings"].value.strip() == "Two late entries at Beta."
    assert kept["confirm"].checked
    assert kept["password"].value == ""
    assert db_session.scalar(select(func.count(AuditReview.id))) == 0
    assert _review_events(db_session, "audit_review.created") == 0
    assert _review_events(db_session, "audit_review.signed") == 0


def test_a_review_needs_a_period_that_ends_after_it_starts_and_a_signature(app, db_session, study):
    _member("monica", Role.MONITOR, study)
    login(app, "monica")
    page = app.get(f"/studies/{study.code}/audit/reviews/new")
    form = _fill_review(page, start=date(2025, 3, 31), end=date(2025, 3, 1))
    form["confirm"] = False
    form["period_start-day"] = "31"

    response = form.submit()

    assert response.status_int == 200
    assert "The end of the period must be the same as or after its start" in (
        response.html.find(id="period_end-date-error").text
    )
    assert "Confirm that you sign off these findings" in response.text
    assert db_session.scalar(select(func.count(AuditReview.id))) == 0


def test_a_site_changed_after_the_last_review_is_not_reviewed_until_a_review_covers_it(
    app, db_session, study
):
    alpha, beta = _site(study, "ALP"), _site(study, "BET")
    _member("monica", Role.MONITOR, study)
    login(app, "monica")
    reviews = f"/studies/{study.code}/audit/reviews/"
    assert _unreviewed_labels(app.get(reviews)) == [
        "Whole study",
        "ALP \N{EN DASH} Alpha Hospital",
        "BET \N{EN DASH} Beta Infirmary",
    ]
    assert _record_review(app, study).status_int == 303  # all sites
    assert _unreviewed_labels(app.get(reviews)) == []

    alpha.recruitment_target = 80
    db_session.flush()

    page = app.get(reviews)
    assert _unreviewed_labels(page) == ["Whole study", "ALP \N{EN DASH} Alpha Hospital"]
    row = page.html.find("table", {"data-testid": "unreviewed"}).find_all("tr")[-1]
    assert row.find_all("td")[-1].get_text(strip=True).endswith("1")  # one event: the target

    assert _record_review(app, study, site=alpha).status_int == 303
    # The site review covers Alpha; the study as a whole is reviewed only by a review of it.
    assert _unreviewed_labels(app.get(reviews)) == ["Whole study"]
    assert _record_review(app, study).status_int == 303
    assert _unreviewed_labels(app.get(reviews)) == []
    assert beta.id not in {r.site_id for r in db_session.scalars(select(AuditReview))}


def test_a_site_coordinator_sees_only_their_sites_reviews_and_cannot_record_one(
    app, db_session, study
):
    alpha, beta = _site(study, "ALP"), _site(study, "BET")
    _member("monica", Role.MONITOR, study)
    _member("cora", Role.SITE_COORDINATOR, study, site=alpha)
    login(app, "monica")
    for site, findings in (
        (alpha, "Findings at Alpha"),
        (beta, "Findings at Beta"),
        (None, "Findings across the study"),
    ):
        assert _record_review(app, study, site=site, findings=findings).status_int == 303
    app.reset()
    login(app, "cora")

    page = app.get(f"/studies/{study.code}/audit/reviews/")

    log = page.html.find("table", {"data-testid": "reviews"}).get_text(" ", strip=True)
    assert "Findings at Alpha" in log
    assert "Findings at Beta" not in log and "Findings across the study" not in log
    assert page.html.find(attrs={"data-testid": "record-review"}) is None
    assert "Beta Infirmary" not in page.text and "Whole study" not in page.text
    new = f"/studies/{study.code}/audit/reviews/new"
    assert app.get(new, status=403).status_int == 403
    token = csrf_token(app, f"/studies/{study.code}/audit/reviews/")
    app.post(new, {"csrf_token": token, "findings": "x"}, status=403)
    assert db_session.scalar(select(func.count(AuditReview.id))) == 3


def test_a_blinded_statistician_may_not_see_or_record_reviews_or_verify(app, db_session, study):
    _member("stan", Role.STATISTICIAN_BLINDED, study)
    login(app, "stan")
    for path in ("audit/reviews/", "audit/reviews/new", "audit/verification/"):
        app.get(f"/studies/{study.code}/{path}", status=403)
    token = csrf_token(app)
    app.post(f"/studies/{study.code}/audit/verification/", {"csrf_token": token}, status=403)
    app.post(f"/studies/{study.code}/audit/reviews/new", {"csrf_token": token}, status=403)
