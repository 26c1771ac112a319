"""Reading and checking a study folder: ``study.yaml`` and its form files."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast, get_args

import yaml

from bhp_ctms.permissions import Role
from bhp_ctms.studies.definition.marked_yaml import (
    INT_TAG,
    DefinitionError,
    NodeReader,
    Problem,
    at,
    described,
)
from bhp_ctms.studies.definition.model import (
    Arm,
    BlindingLevel,
    ConsentDocuments,
    Criterion,
    CriterionKind,
    Event,
    FormFile,
    Pillar,
    Randomisation,
    RandomisationMethod,
    ScheduleBaseline,
    SiteSeed,
    StudyDefinition,
    StudyStatusValue,
)

if TYPE_CHECKING:
    from bhp_ctms.crf.definition.reader import FormSet

STUDY_FILE = "study.yaml"
FORMS_FOLDER = "forms"
DEFAULT_PARTICIPANT_ID_PATTERN = "{study}-{site}-{seq:04d}"

PHASES = ("I", "I/II", "II", "II/III", "III", "IV", "N/A")
SITE_STATUSES = ("pending", "open", "suspended", "closed")

STUDY_CODE = re.compile(r"[A-Z][A-Z0-9_-]{0,31}")
ITEM_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
SITE_CODE = re.compile(r"[A-Z0-9]{1,16}")
ISRCTN = re.compile(r"ISRCTN\d{8}")
# A EudraCT number, or the longer CTIS number that replaced it in 2023.
EUDRACT = re.compile(r"\d{4}-\d{6}-\d{2}(-\d{2})?")
IRAS = re.compile(r"\d{1,10}")

_STUDY_CODE_RULE = "capital letters, digits, '-' and '_', starting with a letter, at most 32"
_ITEM_CODE_RULE = "lower-case letters, digits and '_', starting with a letter, at most 32"
_SITE_CODE_RULE = "capital letters and digits, at most 16"

# The keys each mapping of study.yaml may have; any other is a typo to report.
STUDY_KEYS = (
    "code",
    "title",
    "phase",
    "status",
    "isrctn",
    "eudract",
    "iras",
    "pillar",
    "rare_disease",
    "sponsor",
    "organisations",
    "blinding",
    "target_sample_size",
    "participant_id_pattern",
    "protocol_version",
    "effective_on",
    "amendment_summary",
    "schedule_baseline",
    "children",
    "arms",
    "events",
    "eligibility",
    "consent",
    "randomisation",
    "sites",
    "users",
)
REQUIRED_STUDY_KEYS = (
    "code",
    "title",
    "phase",
    "pillar",
    "blinding",
    "target_sample_size",
    "protocol_version",
    "effective_on",
    "arms",
    "events",
    "eligibility",
    "consent",
)
ARM_KEYS = ("code", "name", "ratio")
EVENT_KEYS = (
    "code",
    "name",
    "day_offset",
    "window_before",
    "window_after",
    "repeating",
    "max_repeats",
    "forms",
)
SCHEDULE_KEYS = ("day_offset", "window_before", "window_after")
CRITERION_KEYS = ("code", "kind", "text")
CONSENT_KEYS = ("information_sheet", "consent_form", "child_information_sheet", "assent_form")
SITE_KEYS = ("code", "name", "status", "recruitment_target", "principal_investigator")
USER_KEYS = ("username", "full_name", "role", "scope", "site")


def read_study(folder: Path) -> StudyDefinition:
    """Read and check the study definition in ``folder``.

    Raises :class:`DefinitionError` listing every problem found.
    """
    problems, definition = _read(folder)
    if definition is None:
        raise DefinitionError(problems)
    return definition


def check_study(folder: Path) -> list[Problem]:
    """Every problem with the study definition in ``folder``; [] when there is none."""
    return _read(folder)[0]


def _read(folder: Path) -> tuple[list[Problem], StudyDefinition | None]:
    problems: list[Problem] = []
    study_path = folder / STUDY_FILE
    forms, form_set = _read_forms(folder, problems)
    reader = NodeReader(study_path, problems)
    definition = None
    if not study_path.is_file():
        problems.append(Problem(study_path, None, None, "not found: a study folder needs one"))
    else:
        _, root = reader.compose()
        if root is not None:
            definition = _StudyReader(reader, forms, form_set).read(root)
    problems.sort(key=lambda p: (str(p.path), p.line or 0, p.column or 0))
    return problems, None if problems else definition


def _read_forms(
    folder: Path, problems: list[Problem]
) -> tuple[tuple[FormFile, ...] | None, FormSet]:
    """The study's form files (None when it has no forms folder yet) and the forms read
    without a problem; every problem with them, and with ``codelists.yaml``, is noted."""
    # Imported here: the form reader builds on this package (its YAML reading and
    # Problem), so this package cannot import it while it is itself being imported.
    from bhp_ctms.crf.definition.reader import read_form_folder

    form_set, files = read_form_folder(folder, problems, study_folder=True)
    return files, form_set


def _node_at(node: yaml.Node, path: Sequence[str | int]) -> yaml.Node:
    """The deepest node of ``path`` (mapping keys and list indices) that exists."""
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            found = next((value for key, value in node.value if key.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            found = node.value[part] if 0 <= part < len(node.value) else None
        else:
            found = None
        if found is None:
            return node
        node = found
    return node


def _factor_item_problem(reference: str, events: tuple[Event, ...], form_set: FormSet) -> str:
    """Why a factor's ``event/form.item`` cannot give a participant's level; "" if it can."""
    event_code, _, rest = reference.partition("/")
    form_code, _, item_code = rest.partition(".")
    event = next((event for event in events if event.code == event_code), None)
    if event is None:
        return f"no event has code {event_code!r}"
    if form_code not in event.forms:
        return f"event {event_code!r} has no form {form_code!r}"
    form = form_set.forms.get(form_code)
    if form is None:
        return ""  # the form file's own problems are reported with it
    if item_code not in {item.code for item in form.items}:
        return f"form {form_code!r} has no item {item_code!r}"
    item = form.item(item_code)
    if form.group_of(item_code) is not None:
        return f"item {item_code!r} is in a repeating group: a factor needs one value"
    if not item.choices:
        return (
            f"item {item_code!r} is a {item.type} item: a factor needs a single choice or "
            "yes/no item, whose choices are its levels"
        )
    if item.type not in {"single_choice", "yes_no"}:
        return f"item {item_code!r} is a {item.type} item: a factor needs one choice"
    return ""


class _StudyReader:
    """Reads ``study.yaml``, checking it against itself and the study's form files."""

    def __init__(
        self,
        reader: NodeReader,
        forms: tuple[FormFile, ...] | None,
        form_set: FormSet | None = None,
    ) -> None:
        self.reader = reader
        self.forms = forms
        self.form_set = form_set

    def read(self, root: yaml.Node) -> StudyDefinition | None:
        r = self.reader
        if not isinstance(root, yaml.MappingNode):
            r.problem(root, "", "a study file must be a mapping of study settings")
            return None
        top = r.mapping(root, "", STUDY_KEYS, REQUIRED_STUDY_KEYS)
        assert top is not None
        blinding = r.choice(top.get("blinding"), "blinding", get_args(BlindingLevel), "open")
        children = r.boolean(top.get("children"), "children")
        arms = self._arms(top.get("arms"), blinding)
        randomisation = self._randomisation(top.get("randomisation"))
        if randomisation is not None and len(arms) < 2:
            r.problem(top["randomisation"], "randomisation", "needs at least two arms")
        events = self._events(top.get("events"))
        if randomisation is not None and len(arms) >= 2:
            self._check_scheme(top["randomisation"], randomisation, arms, events)
        baseline = r.choice(
            top.get("schedule_baseline"),
            "schedule_baseline",
            get_args(ScheduleBaseline),
            "registration",
        )
        if baseline == "randomisation" and "randomisation" not in top:
            message = "is randomisation, but the study has no randomisation section"
            r.problem(top["schedule_baseline"], "schedule_baseline", message)
        sites = self._sites(top.get("sites"))
        status = top.get("status")
        definition = StudyDefinition(
            code=r.code(top.get("code"), "code", STUDY_CODE, _STUDY_CODE_RULE),
            title=r.text(top.get("title"), "title", max_length=500),
            phase=r.choice(top.get("phase"), "phase", PHASES, "N/A"),
            isrctn=r.pattern(top.get("isrctn"), "isrctn", ISRCTN, "ISRCTN and 8 digits"),
            eudract=r.pattern(
                top.get("eudract"),
                "eudract",
                EUDRACT,
                "a EudraCT number (2004-000000-00) or a CTIS number (2024-500000-00-00)",
            ),
            iras=r.pattern(top.get("iras"), "iras", IRAS, "an IRAS ID (digits only)"),
            pillar=cast(Pillar, r.choice(top.get("pillar"), "pillar", get_args(Pillar), "cancer")),
            rare_disease=r.boolean(top.get("rare_disease"), "rare_disease"),
            sponsor=r.text(top.get("sponsor"), "sponsor", allow_empty=True, max_length=200),
            organisations=r.texts(top.get("organisations"), "organisations", "a name"),
            blinding=cast(BlindingLevel, blinding),
            target_sample_size=r.integer(
                top.get("target_sample_size"),
                "target_sample_size",
                "a whole number of participants ≥ 1",
                minimum=1,
            ),
            participant_id_pattern=self._participant_id_pattern(top.get("participant_id_pattern")),
            protocol_version=r.text(
                top.get("protocol_version"),
                "protocol_version",
                expected="a version label",
                max_length=32,
            ),
            effective_on=r.date(top.get("effective_on"), "effective_on"),
            amendment_summary=r.text(
                top.get("amendment_summary"), "amendment_summary", allow_empty=True
            ),
            schedule_baseline=cast(ScheduleBaseline, baseline),
            children=children,
            arms=arms,
            events=events,
            criteria=self._criteria(top.get("eligibility")),
            consent=self._consent(top.get("consent"), children),
            randomisation=randomisation,
            forms=self.forms or (),
            sites=sites,
            users=self._users(top.get("users"), {site.code for site in sites}),
            status=None
            if status is None
            else cast(
                StudyStatusValue,
                r.choice(status, "status", get_args(StudyStatusValue), "set_up"),
            ),
        )
        return definition

    def _entries(
        self, node: yaml.Node | None, where: str, allowed: Sequence[str], required: Sequence[str]
    ) -> Iterator[tuple[str, yaml.Node, dict[str, yaml.Node]]]:
        """Each mapping of a list, with its location and node."""
        for index, item in enumerate(self.reader.sequence(node, where)):
            entries = self.reader.mapping(item, f"{where}[{index}]", allowed, required)
            if entries is not None:
                yield f"{where}[{index}]", item, entries

    def _unique(
        self, seen: dict[str, yaml.Node], value: str, node: yaml.Node | None, where: str, what: str
    ) -> None:
        if not value or node is None:
            return
        if value in seen:
            first = seen[value].start_mark.line + 1
            self.reader.problem(
                node, where, f"{what} {value!r} given twice (first on line {first})"
            )
        else:
            seen[value] = node

    def _arms(self, node: yaml.Node | None, blinding: str) -> tuple[Arm, ...]:
        r = self.reader
        arms = []
        seen: dict[str, yaml.Node] = {}
        for where, _, entries in self._entries(node, "arms", ARM_KEYS, ("code", "name")):
            code = r.code(entries.get("code"), f"{where}.code", ITEM_CODE, _ITEM_CODE_RULE)
            self._unique(seen, code, entries.get("code"), f"{where}.code", "arm code")
            name = r.text(entries.get("name"), f"{where}.name")
            ratio = r.integer(
                entries.get("ratio"), f"{where}.ratio", "a whole number ≥ 1", minimum=1, default=1
            )
            arms.append(Arm(code, name, ratio))
        if isinstance(node, yaml.SequenceNode):
            if not node.value:
                r.problem(node, "arms", "a study needs at least one arm")
            elif blinding != "open" and len(node.value) < 2:
                r.problem(node, "arms", f"a {blinding}-blind study needs at least two arms")
        return tuple(arms)

    def _events(self, node: yaml.Node | None) -> tuple[Event, ...]:
        r = self.reader
        events = []
        seen: dict[str, yaml.Node] = {}
        previous: tuple[int, str] | None = None
        for where, item, entries in self._entries(node, "events", EVENT_KEYS, ("code", "name")):
            code = r.code(entries.get("code"), f"{where}.code", ITEM_CODE, _ITEM_CODE_RULE)
            self._unique(seen, code, entries.get("code"), f"{where}.code", "event code")
            name = r.text(entries.get("name"), f"{where}.name")
            repeating = r.boolean(entries.get("repeating"), f"{where}.repeating")
            day_offset: int | None = None
            window_before = window_after = 0
            max_repeats: int | None = None
            if repeating:
                for key in SCHEDULE_KEYS:
                    if key in entries:
                        message = f"a repeating event has no {key.replace('_', ' ')}"
                        r.problem(entries[key], at(where, key), message)
                max_repeats = (
                    r.integer(
                        entries.get("max_repeats"),
                        f"{where}.max_repeats",
                        "a whole number ≥ 1",
                        minimum=1,
                        default=0,
                    )
                    or None
                )
            else:
                if "day_offset" not in entries:
                    message = "missing required key 'day_offset' (or set repeating: true)"
                    r.problem(item, where, message)
                else:
                    day_offset = r.integer(
                        entries["day_offset"],
                        f"{where}.day_offset",
                        "a whole number of days (negative before the baseline)",
                    )
                    valid = entries["day_offset"].tag == INT_TAG
                    if valid and previous is not None and day_offset <= previous[0]:
                        message = (
                            f"scheduled events must be listed in time order: day {day_offset}"
                            f" is not after day {previous[0]} ({previous[1]})"
                        )
                        r.problem(entries["day_offset"], f"{where}.day_offset", message)
                    if valid:
                        previous = (day_offset, code or where)
                window = "a whole number of days ≥ 0"
                window_before = r.integer(
                    entries.get("window_before"), f"{where}.window_before", window, minimum=0
                )
                window_after = r.integer(
                    entries.get("window_after"), f"{where}.window_after", window, minimum=0
                )
                if "max_repeats" in entries:
                    message = "only repeating events have max_repeats"
                    r.problem(entries["max_repeats"], f"{where}.max_repeats", message)
            forms = self._event_forms(entries.get("forms"), f"{where}.forms")
            events.append(
                Event(
                    code,
                    name,
                    day_offset,
                    window_before,
                    window_after,
                    repeating,
                    forms,
                    max_repeats,
                )
            )
        if isinstance(node, yaml.SequenceNode) and not any(event.scheduled for event in events):
            r.problem(node, "events", "a study needs at least one scheduled event")
        return tuple(events)

    def _event_forms(self, node: yaml.Node | None, where: str) -> tuple[str, ...]:
        r = self.reader
        form_codes = {form.code for form in self.forms} if self.forms is not None else None
        forms = []
        seen: dict[str, yaml.Node] = {}
        for index, item in enumerate(r.sequence(node, where)):
            code = r.code(item, f"{where}[{index}]", ITEM_CODE, _ITEM_CODE_RULE)
            self._unique(seen, code, item, f"{where}[{index}]", "form")
            if code and form_codes is not None and code not in form_codes:
                message = f"no form file has code {code!r} (in {FORMS_FOLDER}/*.yaml)"
                r.problem(item, f"{where}[{index}]", message)
            forms.append(code)
        return tuple(forms)

    def _criteria(self, node: yaml.Node | None) -> tuple[Criterion, ...]:
        r = self.reader
        criteria = []
        seen: dict[str, yaml.Node] = {}
        for where, _, entries in self._entries(node, "eligibility", CRITERION_KEYS, CRITERION_KEYS):
            code = r.code(entries.get("code"), f"{where}.code", ITEM_CODE, _ITEM_CODE_RULE)
            self._unique(seen, code, entries.get("code"), f"{where}.code", "criterion code")
            kind = r.choice(entries.get("kind"), f"{where}.kind", get_args(CriterionKind), "")
            text = r.text(entries.get("text"), f"{where}.text")
            criteria.append(Criterion(code, cast(CriterionKind, kind), text))
        if isinstance(node, yaml.SequenceNode) and not node.value:
            r.problem(node, "eligibility", "a study needs at least one eligibility criterion")
        return tuple(criteria)

    def _consent(self, node: yaml.Node | None, children: bool) -> ConsentDocuments:
        r = self.reader
        entries = r.mapping(node, "consent", CONSENT_KEYS, CONSENT_KEYS[:2]) or {}

        def version(key: str) -> str | None:
            if key not in entries:
                return None
            return r.text(entries[key], f"consent.{key}", expected="a version label")

        consent = ConsentDocuments(
            information_sheet=version("information_sheet") or "",
            consent_form=version("consent_form") or "",
            child_information_sheet=version("child_information_sheet"),
            assent_form=version("assent_form"),
        )
        if children and isinstance(node, yaml.MappingNode):
            for key in ("child_information_sheet", "assent_form"):
                if key not in entries:
                    r.problem(node, "consent", f"{key} is required when children: true")
        return consent

    def _randomisation(self, node: yaml.Node | None) -> Randomisation | None:
        r = self.reader
        if node is None:
            return None
        if not isinstance(node, yaml.MappingNode):
            r.problem(node, "randomisation", f"must be a mapping, not {described(node)}")
            return None
        settings = r.data(node, "randomisation")
        method_node = next((value for key, value in node.value if key.value == "method"), None)
        if method_node is None:
            r.problem(node, "randomisation", "missing required key 'method'")
        method = r.choice(
            method_node, "randomisation.method", get_args(RandomisationMethod), "simple"
        )
        settings.pop("method", None)
        # The method's own settings are checked with the arms (_check_scheme).
        return Randomisation(cast(RandomisationMethod, method), settings)

    def _check_scheme(
        self,
        node: yaml.Node,
        randomisation: Randomisation,
        arms: tuple[Arm, ...],
        events: tuple[Event, ...],
    ) -> None:
        """The method's settings (block sizes, factors, ...), each problem at its line;
        and each factor read from a CRF names a choice item of a form of its event."""
        from bhp_ctms.randomisation.methods.scheme import read_scheme

        scheme, problems = read_scheme(
            randomisation.method, randomisation.settings, [(arm.code, arm.ratio) for arm in arms]
        )
        for problem in problems:
            where = ".".join(["randomisation", *(str(part) for part in problem.path)])
            self.reader.problem(_node_at(node, problem.path), where, problem.message)
        if scheme is None or self.form_set is None:
            return
        for index, factor in enumerate(scheme.factors):
            if not factor.item:
                continue
            at = _node_at(node, ("factors", index, "item"))
            where = f"randomisation.factors[{index}].item"
            message = _factor_item_problem(factor.item, events, self.form_set)
            if message:
                self.reader.problem(at, where, message)

    def _participant_id_pattern(self, node: yaml.Node | None) -> str:
        where = "participant_id_pattern"
        pattern = self.reader.text(node, where, default=DEFAULT_PARTICIPANT_ID_PATTERN)
        if node is not None and pattern and (problem := _pattern_problem(pattern)):
            self.reader.problem(node, where, problem)
        return pattern

    def _sites(self, node: yaml.Node | None) -> tuple[SiteSeed, ...]:
        r = self.reader
        sites = []
        seen: dict[str, yaml.Node] = {}
        for where, _, entries in self._entries(node, "sites", SITE_KEYS, ("code", "name")):
            code = r.code(entries.get("code"), f"{where}.code", SITE_CODE, _SITE_CODE_RULE)
            self._unique(seen, code, entries.get("code"), f"{where}.code", "site code")
            sites.append(
                SiteSeed(
                    code=code,
                    name=r.text(entries.get("name"), f"{where}.name", max_length=200),
                    status=r.choice(
                        entries.get("status"), f"{where}.status", SITE_STATUSES, "pending"
                    ),
                    recruitment_target=r.integer(
                        entries.get("recruitment_target"),
                        f"{where}.recruitment_target",
                        "a whole number of participants ≥ 0",
                        minimum=0,
                    )
                    if "recruitment_target" in entries
                    else None,
                    principal_investigator=r.text(
                        entries.get("principal_investigator"),
                        f"{where}.principal_investigator",
                        allow_empty=True,
                        max_length=200,
                    ),
                )
            )
        return tuple(sites)

    def _users(self, node: yaml.Node | None, site_codes: set[str]) -> tuple[Mapping[str, str], ...]:
        r = self.reader
        users = []
        seen: dict[str, yaml.Node] = {}
        required = ("username", "full_name", "role")
        for where, _, entries in self._entries(node, "users", USER_KEYS, required):
            user = {key: r.text(value, at(where, key)) for key, value in entries.items()}
            if "username" in entries:
                self._unique(
                    seen, user["username"], entries["username"], f"{where}.username", "username"
                )
            if "role" in entries and user["role"] not in ROLES:
                r.problem(
                    entries["role"],
                    f"{where}.role",
                    f"no role is called {user['role']!r}; roles: {', '.join(ROLES)}",
                )
            if "site" in entries and user["site"] not in site_codes:
                r.problem(entries["site"], f"{where}.site", f"no site has code {user['site']!r}")
            users.append(user)
        return tuple(users)


ROLES = tuple(role.value for role in Role)

# The length of a participant's study ID as stored (participants.code).
PARTICIPANT_CODE_LENGTH = 64


def _pattern_problem(pattern: str) -> str | None:
    """What is wrong with a participant ID pattern, or None when it can be used."""
    allowed = "may use only the fields {study}, {site} and {seq}"
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(pattern)
            if name is not None
        ]
    except ValueError as error:
        return f"is not a valid pattern: {error}"
    for name, spec, conversion in fields:
        if name not in ("study", "site", "seq"):
            return f"{allowed}, not {{{name}}}"
        if conversion or (spec and "{" in spec):
            return f"{allowed}, each with an optional format such as {{seq:04d}}"
    names = {name for name, _, _ in fields}
    if "seq" not in names:
        return "must contain {seq}, the participant's number at the site"
    if "site" not in names:
        # Numbers count per site: without the site, two sites would give the same ID.
        return "must contain {site}: participants are numbered per site"
    try:
        # The longest ID it could make: study and site codes at their longest.
        longest = pattern.format(study="S" * 32, site="S" * 16, seq=99999)
    except (ValueError, TypeError) as error:
        return f"cannot be used: {error}"
    if len(longest) > PARTICIPANT_CODE_LENGTH:
        return (
            f"makes study IDs up to {len(longest)} characters long; "
            f"at most {PARTICIPANT_CODE_LENGTH} fit"
        )
    return None
