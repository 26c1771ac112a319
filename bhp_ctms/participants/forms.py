"""Forms for registering a participant and recording their identifiers, consent,
eligibility, status and visits.

Each form checks what it can alone (a value is there, a date is a date, an NHS
number's check digit); the rules that need the participant's record are the
service's, whose refusals the views show beside the field they name.
"""

from __future__ import annotations

from typing import Any

from wtforms import BooleanField, PasswordField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, ValidationError

from bhp_ctms.forms import DateInputField, Form, strip_whitespace
from bhp_ctms.participants.identifiers import Identifiers, nhs_number_problem
from bhp_ctms.participants.models import (
    ConsentGivenBy,
    ConsentKind,
    ExclusionReason,
    ParticipantStatus,
    VisitStatus,
    WithdrawalType,
)
from bhp_ctms.studies.definition import StudyDefinition

MAXIMUM_TEXT_LENGTH = 2000
YES_NO = [SelectChoice("yes", "Yes"), SelectChoice("no", "No")]


def _radios(label: str, choices: list[SelectChoice], message: str, hint: str = "") -> RadioField:
    # A missing and an unknown choice get the same message: choose one of these.
    return RadioField(label, choices=choices, description=hint, invalid_choice_message=message)


def _text(label: str, hint: str = "", *, required: str = "", maximum: int = 200) -> StringField:
    validators: list[Any] = [
        Length(max=maximum, message=f"{label} must be {maximum:,} characters or fewer")
    ]
    if required:
        validators.insert(0, DataRequired(message=required))
    return StringField(label, description=hint, filters=[strip_whitespace], validators=validators)


def _long_text(label: str, hint: str = "", *, required: str = "") -> TextAreaField:
    validators: list[Any] = [
        Length(
            max=MAXIMUM_TEXT_LENGTH,
            message=f"{label} must be {MAXIMUM_TEXT_LENGTH:,} characters or fewer",
        )
    ]
    if required:
        validators.insert(0, DataRequired(message=required))
    return TextAreaField(label, description=hint, filters=[strip_whitespace], validators=validators)


def _date(label: str, hint: str, required: str = "") -> DateInputField:
    return DateInputField(
        label,
        description=hint,
        validators=[DataRequired(message=required)] if required else [],
    )


# -- identifiers --------------------------------------------------------------------


def _full_name() -> StringField:
    return _text("Full name", "As on their hospital record. Leave empty if not kept.")


def _date_of_birth() -> DateInputField:
    return _date(
        "Date of birth", "For example, 27 3 2012. Needed for a child: it shows when they turn 16."
    )


def _nhs_number() -> StringField:
    return _text(
        "NHS number", "10 digits, for example 943 476 5919. Leave empty if not kept.", maximum=20
    )


def _confirm_not_duplicate() -> BooleanField:
    return BooleanField(
        "This is a different person from the participant with the same name and date of birth"
    )


class IdentifierFields:
    """The direct identifiers, shown only to staff of the participant's own site."""

    full_name: Any
    date_of_birth: Any
    nhs_number: Any

    def identifiers(self) -> Identifiers:
        return Identifiers(
            full_name=self.full_name.data or None,
            date_of_birth=self.date_of_birth.data,
            nhs_number=self.nhs_number.data or None,
        )

    def validate_nhs_number(self, field: Any) -> None:
        if field.data:
            problem = nhs_number_problem(field.data)
            if problem:
                raise ValidationError(problem)


class IdentifiersForm(IdentifierFields, Form):
    full_name = _full_name()
    date_of_birth = _date_of_birth()
    nhs_number = _nhs_number()
    confirm_not_duplicate = _confirm_not_duplicate()


class RegisterForm(IdentifierFields, Form):
    registered_on = _date(
        "Date of registration",
        "The day they were screened, for example 12 3 2026",
        "Enter the date of registration",
    )
    is_child = _radios(
        "Is the participant under 16?",
        YES_NO,
        "Choose yes if the participant is under 16, or no",
        "A child's consent is given by a person with parental responsibility, with the "
        "child's assent.",
    )
    full_name = _full_name()
    date_of_birth = _date_of_birth()
    nhs_number = _nhs_number()
    confirm_not_duplicate = _confirm_not_duplicate()

    def __init__(self, formdata: Any = None, *, recruits_children: bool, **kwargs: Any) -> None:
        super().__init__(formdata, **kwargs)
        self.recruits_children = recruits_children
        if not recruits_children:
            # Adults only: the question is not asked.
            self.is_child.data = "no"

    @property
    def child(self) -> bool:
        return self.is_child.data == "yes"


# -- consent ----------------------------------------------------------------------------


class ConsentForm(Form):
    kind = _radios(
        "What are you recording?",
        [SelectChoice(kind.value, kind.label) for kind in ConsentKind],
        "Choose consent or assent",
        "Assent is the child's own agreement, beside the consent of a person with "
        "parental responsibility.",
    )
    given_by = _radios(
        "Who gave it?",
        [SelectChoice(giver.value, giver.label) for giver in ConsentGivenBy],
        "Choose who gave consent",
    )
    information_sheet_version = _text(
        "Information sheet version",
        "The version printed on the information sheet they were given (for assent, the "
        "child's information sheet)",
        required="Enter the version of the information sheet",
        maximum=32,
    )
    form_version = _text(
        "Consent form version",
        "The version printed on the form that was signed (for assent, the assent form)",
        required="Enter the version of the consent form",
        maximum=32,
    )
    consented_on = _date(
        "Date of consent",
        "The date on the signed form, for example 3 2 2026",
        "Enter the date of consent",
    )
    taken_by = _text(
        "Taken by",
        "The name of the person who took consent, as they signed the form",
        required="Enter the name of the person who took consent",
    )

    def __init__(self, formdata: Any = None, *, is_child: bool, **kwargs: Any) -> None:
        super().__init__(formdata, **kwargs)
        self.is_child = is_child
        if not is_child:
            # An adult gives their own consent: nothing to choose.
            self.kind.data = ConsentKind.CONSENT.value
            self.given_by.data = ConsentGivenBy.PARTICIPANT.value

    @property
    def consent_kind(self) -> ConsentKind:
        return ConsentKind(self.kind.data)

    @property
    def giver(self) -> ConsentGivenBy:
        return ConsentGivenBy(self.given_by.data)


# -- eligibility ------------------------------------------------------------------------


class EligibilityForm(Form):
    """One yes/no question per criterion of the participant's protocol version, then the
    date; made for each definition by :func:`eligibility_form`."""

    criteria_fields: list[tuple[str, str, str]]

    def answers(self) -> dict[str, str]:
        return {code: self[name].data or "" for code, name, _kind in self.criteria_fields}

    def field_of(self, criterion_code: str) -> str | None:
        for code, name, _kind in self.criteria_fields:
            if code == criterion_code:
                return name
        return None

    def group(self, kind: str) -> list[Any]:
        return [
            self[name] for _code, name, field_kind in self.criteria_fields if field_kind == kind
        ]


_ELIGIBILITY_FORMS: dict[str, type[EligibilityForm]] = {}


def eligibility_form(
    definition: StudyDefinition, version_key: str, formdata: Any = None
) -> EligibilityForm:
    """The eligibility form of a protocol version (its class is made once per version)."""
    form_class = _ELIGIBILITY_FORMS.get(version_key)
    if form_class is None:
        fields: dict[str, Any] = {}
        criteria_fields = []
        for criterion in definition.criteria:
            name = f"criterion_{criterion.code}"
            fields[name] = _radios(
                criterion.text,
                YES_NO,
                f"Answer yes or no for the {criterion.kind} criterion: {criterion.text}",
            )
            criteria_fields.append((criterion.code, name, criterion.kind))
        fields["assessed_on"] = _date(
            "Date of the assessment",
            "For example, 10 2 2026",
            "Enter the date of the assessment",
        )
        fields["criteria_fields"] = criteria_fields
        form_class = type("ProtocolEligibilityForm", (EligibilityForm,), fields)
        _ELIGIBILITY_FORMS[version_key] = form_class
    return form_class(formdata)


class ConfirmEligibilityForm(Form):
    password = PasswordField(
        "Your password",
        description="Your electronic signature: the password you log in with",
        validators=[InputRequired(message="Enter your password to confirm eligibility")],
    )


# -- status --------------------------------------------------------------------------------


class StatusForm(Form):
    # Any status is read, offered or not: the service explains why one cannot be chosen.
    status = RadioField("New status", choices=[], validate_choice=False)
    status_on = _date(
        "Date it took effect",
        "For example, 14 5 2026: the date of withdrawal, death or the last visit",
        "Enter the date the status took effect",
    )
    withdrawal_type = _radios(
        "What have they withdrawn from?",
        [SelectChoice(kind.value, kind.label) for kind in WithdrawalType],
        "Choose what the participant has withdrawn from",
    )
    exclusion_reason = _radios(
        "Why were they not enrolled?",
        [SelectChoice(reason.value, reason.label) for reason in ExclusionReason],
        "Choose why the participant was not enrolled",
    )
    details = _long_text(
        "Details",
        "The reason for a withdrawal, the cause of death, or anything else to record",
    )
    reason_for_change = _long_text(
        "Reason for change",
        "Kept in the audit trail. Needed because this participant's participation has ended.",
    )

    def __init__(
        self, formdata: Any = None, *, offered: list[ParticipantStatus], **kwargs: Any
    ) -> None:
        super().__init__(formdata, **kwargs)
        self.status.choices = [SelectChoice(status.value, status.label) for status in offered]
        # Only asked when the new status needs them; the service says so if missing.
        self.withdrawal_type.validate_choice = self.status.data == ParticipantStatus.WITHDRAWN
        self.exclusion_reason.validate_choice = self.status.data == ParticipantStatus.NOT_ENROLLED

    def offers(self, status: ParticipantStatus) -> bool:
        return any(choice.value == status.value for choice in self.status.choices or [])

    def validate_status(self, field: Any) -> None:
        if field.data not in set(ParticipantStatus):
            raise ValidationError("Choose the participant's new status")

    @property
    def new_status(self) -> ParticipantStatus:
        return ParticipantStatus(self.status.data)

    @property
    def withdrawal(self) -> WithdrawalType | None:
        data = self.withdrawal_type.data
        return WithdrawalType(data) if data in set(WithdrawalType) else None

    @property
    def exclusion(self) -> ExclusionReason | None:
        data = self.exclusion_reason.data
        return ExclusionReason(data) if data in set(ExclusionReason) else None


# -- visits ---------------------------------------------------------------------------------


class VisitForm(Form):
    status = _radios(
        "Was the visit done?",
        [
            SelectChoice(VisitStatus.DONE.value, "Yes"),
            SelectChoice(VisitStatus.NOT_DONE.value, "No"),
        ],
        "Choose yes if the visit was done, or no",
    )
    visit_on = _date("Date of the visit", "For example, 16 2 2026")
    not_done_reason = _long_text("Why was it not done?", "Only if the visit was not done")
    reason_for_change = _long_text(
        "Reason for change",
        "Kept in the audit trail. Needed to change a visit already recorded.",
    )

    @property
    def visit_status(self) -> VisitStatus:
        return VisitStatus(self.status.data)
