"""A study's randomisation scheme bound to its data: which arms, which factors, where
each factor's level is read from (the site, or an item of a CRF), and who may see an
arm."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.audit.masking import HeldRole, is_blinded
from bhp_ctms.crf.entry import form_definition
from bhp_ctms.crf.models import FormEntry, FormVersion, ItemValue
from bhp_ctms.participants.models import Participant
from bhp_ctms.randomisation.methods.scheme import Scheme, read_scheme
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.definition import StudyDefinition
from bhp_ctms.studies.models import Blinding, ProtocolVersion, Study
from bhp_ctms.studies.services import protocol_definition

SITE_FACTOR = "site"
LIST_METHODS = frozenset({"simple", "permuted_blocks", "big_stick"})


def sees_arms(study: Study, memberships: Iterable[HeldRole]) -> bool:
    """Whether a reader may see arms in a study: anyone in an open-label study; in a
    blinded one, only holders of an unblinded role."""
    return study.blinding == Blinding.OPEN or not is_blinded(memberships, study.id)


def arm_name(definition: StudyDefinition, code: str) -> str:
    """An arm's name as the protocol gives it (its code if the protocol has no such arm)."""
    try:
        return definition.arm(code).name
    except KeyError:
        return code


@dataclass(frozen=True)
class FactorSource:
    """Where a factor's level comes from: the participant's site, or one CRF item
    (``event``/``form``.``item``, the event's first instance)."""

    code: str
    label: str
    event: str = ""
    form: str = ""
    item: str = ""
    # Where a person enters it: "the Demographics form at Screening".
    where: str = ""

    @property
    def is_site(self) -> bool:
        return not self.item


@dataclass(frozen=True)
class StudyScheme:
    """The scheme of a study as its latest protocol version defines it."""

    study: Study
    definition: StudyDefinition
    scheme: Scheme
    # Every factor the method uses (stratification or minimisation), in order.
    factors: tuple[FactorSource, ...]
    # Each factor's levels as (code, label).
    levels: dict[str, tuple[tuple[str, str], ...]]

    @property
    def method(self) -> str:
        return self.scheme.method

    @property
    def list_based(self) -> bool:
        return self.scheme.method in LIST_METHODS

    def arm_name(self, code: str) -> str:
        return arm_name(self.definition, code)

    def level_label(self, factor: str, code: str) -> str:
        return dict(self.levels.get(factor, ())).get(code, code)

    def describe_levels(self, levels: dict[str, str]) -> str:
        """``Site NTH, Sex Female``: a participant's levels as people read them."""
        return ", ".join(
            f"{factor.label} {self.level_label(factor.code, levels[factor.code])}"
            for factor in self.factors
            if factor.code in levels
        )

    def describe_stratum(self, stratum: str) -> str:
        """A stratum key (``site=NTH;sex=F``) as people read it."""
        if not stratum or stratum == "all":
            return "All participants (not stratified)"
        levels = dict(part.split("=", 1) for part in stratum.split(";") if "=" in part)
        return self.describe_levels(levels)


def latest_protocol_version(db: Session, study: Study) -> ProtocolVersion | None:
    return db.scalars(
        select(ProtocolVersion)
        .where(ProtocolVersion.study_id == study.id)
        .order_by(ProtocolVersion.number.desc())
        .limit(1)
    ).first()


def _factor_codes(scheme: Scheme) -> list[str]:
    codes = list(scheme.stratify_by) if scheme.method in LIST_METHODS else []
    if scheme.method == "minimisation":
        codes = [factor.code for factor in scheme.factors]
    return codes


def study_scheme(db: Session, study: Study) -> StudyScheme | None:
    """The study's scheme, or None when its protocol has no randomisation."""
    version = latest_protocol_version(db, study)
    if version is None:
        return None
    definition = protocol_definition(version)
    if definition.randomisation is None:
        return None
    scheme, problems = read_scheme(
        definition.randomisation.method,
        definition.randomisation.settings,
        [(arm.code, arm.ratio) for arm in definition.arms],
    )
    if scheme is None:
        # The study check refuses such a definition; one loaded earlier says why here.
        raise ValueError(
            "The study's randomisation section has problems: "
            + "; ".join(problem.message for problem in problems)
        )
    items = {factor.code: factor.item for factor in scheme.factors}
    factors: list[FactorSource] = []
    levels: dict[str, tuple[tuple[str, str], ...]] = {}
    sites = db.scalars(select(Site).where(Site.study_id == study.id).order_by(Site.code)).all()
    for code in _factor_codes(scheme):
        reference = items.get(code) or ""
        if code == SITE_FACTOR or not reference:
            factors.append(FactorSource(code, "Site"))
            levels[code] = tuple((site.code, site.name) for site in sites)
            continue
        event, _, rest = reference.partition("/")
        form, _, item = rest.partition(".")
        label, title, choices = _item_levels(db, study, definition, form, item)
        event_name = next((e.name for e in definition.events if e.code == event), event)
        where = f"the {title} form at {event_name}"
        factors.append(FactorSource(code, label, event, form, item, where))
        levels[code] = choices
    return StudyScheme(study, definition, scheme, tuple(factors), levels)


def _item_levels(
    db: Session, study: Study, definition: StudyDefinition, form_code: str, item_code: str
) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """An item's label, its form's title and its choices, from the form version the
    protocol names."""
    sha256 = next((form.sha256 for form in definition.forms if form.code == form_code), None)
    version = db.scalars(
        select(FormVersion).where(
            FormVersion.study_id == study.id,
            FormVersion.form_code == form_code,
            FormVersion.sha256 == sha256,
        )
    ).first()
    if version is None:
        return item_code, form_code, ()
    item = form_definition(version).item(item_code)
    return item.label, version.title, tuple((choice.code, choice.label) for choice in item.choices)


def participant_levels(
    db: Session, bound: StudyScheme, participant: Participant, site: Site
) -> tuple[dict[str, str], list[str]]:
    """The participant's level of each factor, and what is missing (as refusals)."""
    levels: dict[str, str] = {}
    missing: list[str] = []
    for factor in bound.factors:
        if factor.is_site:
            levels[factor.code] = site.code
            continue
        value = db.scalar(
            select(ItemValue.value)
            .join(FormEntry, FormEntry.id == ItemValue.form_entry_id)
            .where(
                FormEntry.participant_id == participant.id,
                FormEntry.event_code == factor.event,
                FormEntry.event_instance == 1,
                FormEntry.form_code == factor.form,
                ItemValue.item_path == factor.item,
            )
        )
        known = {code for code, _ in bound.levels.get(factor.code, ())}
        if not value or (known and value not in known):
            missing.append(
                f"{factor.label} is not recorded: enter it on {factor.where} before "
                "randomising (it decides the allocation)"
            )
            continue
        levels[factor.code] = value
    return levels, missing
