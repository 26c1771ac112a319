"""Forms of source data verification: marking an item or a form verified, and the
study's SDV sample."""

from __future__ import annotations

from wtforms import HiddenField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from bhp_ctms.crf.models import SamplingMethod, SourceVerificationPlan
from bhp_ctms.forms import Form, strip_whitespace


class VerifyForm(Form):
    """One SDV mark: ``item`` is the item path, or empty for the whole form."""

    item = HiddenField(filters=[strip_whitespace])


def _whole_number(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() and len(text) <= 9 else None


class SdvPlanForm(Form):
    """The study's SDV sample. The numbers are read as text so that whatever was typed
    is shown again beside its error."""

    method = RadioField(
        "Which participants' forms do monitors verify?",
        choices=[SelectChoice(method.value, method.label) for method in SamplingMethod],
        invalid_choice_message="Choose which participants' forms are verified",
    )
    count = StringField(
        "How many participants at each site",
        description="The first participants registered at each site, for example 3",
        filters=[strip_whitespace],
    )
    percentage = StringField(
        "Percentage of participants at each site",
        description="From 1 to 100, for example 25 to verify every 4th participant",
        filters=[strip_whitespace],
    )

    @classmethod
    def for_plan(cls, plan: SourceVerificationPlan | None) -> SdvPlanForm:
        if plan is None:
            return cls(method=SamplingMethod.ALL.value)
        return cls(
            method=plan.method.value,
            count="" if plan.count is None else str(plan.count),
            percentage="" if plan.percentage is None else str(plan.percentage),
        )

    @property
    def chosen_method(self) -> SamplingMethod:
        return SamplingMethod(self.method.data)

    @property
    def chosen_count(self) -> int | None:
        return _whole_number(self.count.data)

    @property
    def chosen_percentage(self) -> int | None:
        return _whole_number(self.percentage.data)

    def validate_count(self, field: StringField) -> None:
        if self.method.data != SamplingMethod.FIRST.value:
            return
        if not field.data:
            raise ValidationError("Enter how many participants to verify at each site")
        number = _whole_number(field.data)
        if number is None or number < 1:
            raise ValidationError("The number of participants must be a whole number, 1 or more")

    def validate_percentage(self, field: StringField) -> None:
        if self.method.data != SamplingMethod.PERCENTAGE.value:
            return
        if not field.data:
            raise ValidationError("Enter the percentage of participants to verify")
        number = _whole_number(field.data)
        if number is None or not 1 <= number <= 100:
            raise ValidationError("The percentage must be a whole number from 1 to 100")
