"""Masking allocation values in the audit trail for blinded readers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bhp_ctms.audit.masking import MASKED, blinded_fields, displayed_values, is_blinded
from bhp_ctms.audit.models import AuditEvent, canonical_json
from bhp_ctms.audit.spec import AuditContext, Audited
from bhp_ctms.permissions import Role

# A throwaway spec, as a randomisation model would declare it: its arm is blinded.
ALLOCATION = Audited(
    "allocation",
    context=lambda allocation: AuditContext(study_id=allocation.study_id),
    blinded=frozenset({"arm"}),
)
FIELDS = blinded_fields([ALLOCATION])


def event(action, field="", old=None, new=None, entity_type="allocation"):
    return AuditEvent(
        action=action,
        entity_type=entity_type,
        entity_id="1",
        field=field,
        old_value=None if old is None else canonical_json(old),
        new_value=None if new is None else canonical_json(new),
    )


def test_blinded_fields_come_from_the_specs():
    assert blinded_fields([ALLOCATION]) == {("allocation", "arm")}
    assert all(isinstance(pair, tuple) and len(pair) == 2 for pair in blinded_fields())


def test_a_blinded_reader_sees_a_blinded_fields_values_masked():
    change = event("allocation.updated", "arm", old="Walking", new="Usual care")
    assert displayed_values(change, True, FIELDS) == (MASKED, MASKED)
    assert displayed_values(change, False, FIELDS) == ("Walking", "Usual care")


def test_a_creation_masks_the_new_value_and_keeps_no_old_one():
    created = event("allocation.created", "arm", new="Walking")
    assert displayed_values(created, True, FIELDS) == (None, MASKED)


def test_other_fields_and_other_entities_are_not_masked():
    stratum = event("allocation.updated", "stratum", old="over 65", new="under 65")
    assert displayed_values(stratum, True, FIELDS) == ("over 65", "under 65")
    site_arm = event("site.updated", "arm", old="a", new="b", entity_type="site")
    assert displayed_values(site_arm, True, FIELDS) == ("a", "b")


def test_a_deletions_snapshot_has_its_blinded_keys_masked():
    snapshot = {"arm": "Walking", "stratum": "over 65", "participant_id": 7}
    deleted = event("allocation.deleted", old=snapshot)
    old, new = displayed_values(deleted, True, FIELDS)
    assert old == {"arm": MASKED, "stratum": "over 65", "participant_id": 7}
    assert new is None
    assert displayed_values(deleted, False, FIELDS) == (snapshot, None)


def membership(role, study_id):
    return SimpleNamespace(role=role, study_id=study_id)


@pytest.mark.parametrize(
    ("memberships", "blinded"),
    [
        ([], True),
        ([membership(Role.MONITOR, 1)], True),
        ([membership(Role.CTU_ADMIN, None)], True),
        ([membership(Role.STATISTICIAN_BLINDED, 1)], True),
        ([membership(Role.STATISTICIAN_UNBLINDED, 1)], False),
        ([membership(Role.MONITOR, 1), membership(Role.STATISTICIAN_UNBLINDED, 1)], False),
        ([membership(Role.STATISTICIAN_UNBLINDED, None)], False),
        # Unblinded in another study only: still blinded in this one.
        ([membership(Role.STATISTICIAN_UNBLINDED, 2)], True),
        ([membership("statistician_unblinded", 1)], False),
    ],
)
def test_a_reader_is_blinded_unless_unblinded_for_the_study(memberships, blinded):
    assert is_blinded(memberships, 1) is blinded
