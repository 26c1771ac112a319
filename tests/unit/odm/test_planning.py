"""An ODM file's metadata as a study folder that ``ctms study check`` accepts: codes,
events, forms, items and codelists, and a warning at its line for what is left out."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bhp_ctms.crf.definition import Range, read_forms
from bhp_ctms.exports.records import ExportOptions
from bhp_ctms.odm.folder import write_study_folder
from bhp_ctms.odm.plan import code_of, oid_words, study_code_of
from bhp_ctms.odm.planning import plan_study
from bhp_ctms.odm.reader import read_odm
from bhp_ctms.odm.writer import write_odm
from bhp_ctms.studies.definition import check_study, read_study
from tests.unit.odm.snapshots import AE_V2, VITALS, full_snapshot

SAMPLES = Path("/work/shared/samples/odm")
TODAY = date(2026, 11, 23)

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="the shared ODM samples are absent")


def folder_of(path: Path, out: Path):
    odm = read_odm(path)
    plan = plan_study(odm)
    write_study_folder(plan, out, effective_on=TODAY, participants=2)
    return plan


# What each valid sample holds, so that each is planned from what it has.
VALID = {
    # Metadata (4 forms, one repeating item group per form) and no clinical data.
    "cdash-odm-test.xml": ("TEST_STUDY_003", {"dm", "vs", "ae", "race"}, ["baseline"]),
    # Metadata and clinical data: 7 forms, 4 repeating events, 2 subjects.
    "odm-data-snapshot.xml": (
        "VIRUS",
        {"ae", "ds", "lb", "ec", "dm", "vs", "cm"},
        ["odm_forms", "screening", "visit_1", "visit_2", "visit_3"],
    ),
    # Clinical data only, in two metadata versions it does not define.
    "test_clinical_data_01.xml": (
        "P2006-101",
        {"demog", "labdata", "aenonser"},
        ["screen", "visit_1"],
    ),
    # Reference data only.
    "test_referece_data_01.xml": ("P2006-101", {"reference_p2006_101"}, ["odm_forms"]),
    # Metadata referring to much it does not define; no clinical data.
    "test_odm_002.xml": ("ODM_XML_TEST_STUDY_NAME", {"vs"}, ["baseline", "follow_up"]),
    "test_odm_001-validated.xml": ("ODM_XML_TEST_STUDY_NAME", {"vs"}, ["baseline", "follow_up"]),
}


@pytest.mark.parametrize("name", list(VALID))
def test_each_valid_sample_makes_a_study_folder_that_checks(name, tmp_path):
    plan = folder_of(SAMPLES / name, tmp_path)

    assert check_study(tmp_path) == []
    definition = read_study(tmp_path)
    code, forms, events = VALID[name]
    assert definition.code == code
    assert {form.code for form in definition.forms} == forms
    assert [event.code for event in definition.events] == events
    assert all(warning.path == SAMPLES / name for warning in plan.warnings)


def test_definitions_the_file_refers_to_but_lacks_are_warnings_at_their_lines(tmp_path):
    plan = folder_of(SAMPLES / "test_odm_001-validated.xml", tmp_path)

    warnings = [(warning.line, warning.message) for warning in plan.warnings]
    assert (
        34,
        "form ODM.F.VS refers to item group 'ODM.IG.Common', which the file does not define: "
        "left out",
    ) in warnings
    assert (
        44,
        "item group ODM.IG.VS refers to item 'ODM.IT.VS.BP.DIABP.VSORRES', which the file "
        "does not define: left out",
    ) in warnings
    assert (38, "form ODM.F.DM has no items to import: it is left out") in warnings
    forms = read_forms(tmp_path).forms
    (item,) = forms["vs"].items
    assert (item.code, item.type, item.partial_dates, item.annotations.cdash) == (
        "vs_vsdat",
        "date",
        True,
        "VSDAT",
    )


def test_items_get_their_types_choices_units_and_lengths(tmp_path):
    folder_of(SAMPLES / "cdash-odm-test.xml", tmp_path)
    forms = read_forms(tmp_path).forms

    ae = forms["ae"]
    assert ae.item("ae_aestdtc").type == "datetime"
    assert ae.item("ae_aeterm").max_length == 999
    assert [group.code for group in ae.groups] == ["ae"]
    assert forms["vs"].groups[0].label == "Vital Sign Measurement"
    dm = forms["dm"]
    assert dm.item("dm_brthyr").type == "integer"
    assert dm.item("dm_sex").type == "text"  # its code list is not in the file


def test_a_file_without_metadata_makes_text_items_from_its_data(tmp_path):
    plan = folder_of(SAMPLES / "test_clinical_data_01.xml", tmp_path)

    forms = read_forms(tmp_path).forms
    assert [item.code for item in forms["labdata"].items] == ["lbdtc", "lbtestcd", "lborres"]
    assert {item.type for form in forms.values() for item in form.items} == {"text"}
    assert plan.event_oids == {"Screen": "screen", "VISIT_1": "visit_1"}


def test_our_own_export_plans_back_to_the_same_forms(tmp_path):
    path = tmp_path / "demo.xml"
    with path.open("wb") as out:
        write_odm(full_snapshot(), ExportOptions(formats=("odm",), blinded=False), out)
    folder = tmp_path / "study"

    plan = folder_of(path, folder)

    assert check_study(folder) == []
    definition = read_study(folder)
    assert (definition.code, definition.title) == (
        "DEMO",
        'A trial of exercise & "talking" <after> surgery',
    )
    assert [(event.code, event.repeating) for event in definition.events] == [
        ("baseline", False),
        ("week_2", False),
        ("adverse_event", True),
    ]
    assert [arm.code for arm in definition.arms] == ["walking", "usual_care"]
    assert [site.code for site in definition.sites] == ["NTH", "CHH"]
    forms = read_forms(folder).forms
    # Several versions of a form: the latest is the form, the others' values placed in it.
    assert forms["ae"].version == "2.0" and plan.form_oids["F.ae.1"] == "ae"
    for source, imported in ((VITALS, forms["vitals"]), (AE_V2, forms["ae"])):
        for item in source.items:
            if not item.holds_value:
                continue
            back = imported.item(item.code)
            expected = "decimal" if item.type == "calculated" else item.type
            assert back.type == expected, item.code
            assert (back.label, back.units, back.missing_codes) == (
                item.label,
                item.units,
                item.missing_codes,
            ), item.code
            if item.type != "yes_no":  # a yes/no item's choices are Yes and No, given or not
                assert back.choices == item.choices, item.code
            assert (back.annotations, back.partial_dates, back.required) == (
                item.annotations,
                item.partial_dates,
                item.required,
            ), item.code
            if item.type != "calculated":
                assert (back.hard_range, back.soft_range) == (
                    fixed(item.hard_range),
                    fixed(item.soft_range),
                ), item.code
    assert forms["vitals"].item("sex").codelist == "sex"
    assert forms["ae"].group_of("drug").code == "treatments"


def fixed(limits: Range | None) -> Range | None:
    """A range as ODM keeps it: a limit of today (not a fixed value) is not kept."""
    if limits is None:
        return None
    kept = [
        None if limit in ("today", "now") else limit for limit in (limits.minimum, limits.maximum)
    ]
    return None if kept == [None, None] else Range(kept[0], kept[1], limits.message)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("ODM.IT.VS.BP.DIABP.VSORRES", "vs_bp_diabp_vsorres"),
        ("SE.VISIT 1", "visit_1"),
        ("1001_virus", "item_1001_virus"),
    ],
)
def test_codes_are_made_from_oids(text, code):
    assert code_of(oid_words(text), kind="item", length=64, taken=set()) == code


def test_codes_are_unique_and_short_enough():
    taken: set[str] = set()
    codes = [code_of("Visit number one", kind="event", length=8, taken=taken) for _ in range(3)]
    assert codes == ["visit_nu", "visit_2", "visit_3"]


def test_a_study_code_from_its_name_or_oid():
    odm = read_odm(SAMPLES / "odm-data-snapshot.xml")
    assert study_code_of(odm.studies[0], "x") == "VIRUS"
    assert study_code_of(None, "1001 virus") == "S1001_VIRUS"
