"""Reading and checking form files, and the codelists they share.

A folder of forms is read in two passes: each file on its own (its keys, items and
edit checks), then the expressions of every form together, since a form may use an
item of another form of the same folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import yaml

from bhp_ctms.crf.definition.checks import check_expressions
from bhp_ctms.crf.definition.items import (
    ITEM_CODE,
    ITEM_CODE_RULE,
    EntryReader,
    ExpressionSite,
    read_choices,
    suggestion,
)
from bhp_ctms.crf.definition.model import (
    CheckSeverity,
    Codelist,
    EditCheck,
    FormDefinition,
    Item,
)
from bhp_ctms.crf.definition.source import FormNodeReader
from bhp_ctms.studies.definition import (
    FORMS_FOLDER,
    STUDY_FILE,
    DefinitionError,
    FormFile,
    Problem,
)
from bhp_ctms.studies.definition import ITEM_CODE as FORM_CODE
from bhp_ctms.studies.definition.marked_yaml import NodeReader, at

CODELISTS_FILE = "codelists.yaml"
FORM_CODE_RULE = "lower-case letters, digits and '_', starting with a letter, at most 32"

# The keys each mapping may have; any other is a typo to report.
FORM_KEYS = ("code", "title", "version", "description", "items", "checks")
REQUIRED_FORM_KEYS = ("code", "title", "version", "items")
CHECK_KEYS = ("code", "condition", "message", "severity", "items")
REQUIRED_CHECK_KEYS = CHECK_KEYS
CODELISTS_FILE_KEYS = ("codelists",)
CODELIST_KEYS = ("code", "name", "choices")
SEVERITIES: tuple[CheckSeverity, ...] = ("hard", "soft")

# The lengths of the database columns a form's title and version label are kept in.
TITLE_LENGTH = 200
VERSION_LENGTH = 32


@dataclass(frozen=True)
class FormSet:
    """The forms of a folder by code, in file-name order, and the codelists they share."""

    codelists: Mapping[str, Codelist]
    forms: Mapping[str, FormDefinition]


@dataclass
class _FormRead:
    """What one pass over a form file found, before the folder's expressions are checked."""

    path: Path
    relative: str
    source: bytes
    code: str = ""
    code_node: yaml.Node | None = None
    definition: FormDefinition | None = None
    sites: list[ExpressionSite] = field(default_factory=list)


def read_forms(folder: Path) -> FormSet:
    """Read and check the forms in ``folder``: a study folder (its ``forms/`` and
    ``codelists.yaml``) or a folder holding form files (and ``codelists.yaml``).

    Raises :class:`DefinitionError` listing every problem found.
    """
    problems: list[Problem] = []
    form_set, _ = read_form_folder(folder, problems)
    if problems:
        raise DefinitionError(_sorted(problems))
    return form_set


def check_forms(folder: Path) -> list[Problem]:
    """Every problem with the forms in ``folder`` (as :func:`read_forms` reads them),
    in file and line order; [] when there is none."""
    problems: list[Problem] = []
    read_form_folder(folder, problems)
    return _sorted(problems)


def read_form_folder(
    folder: Path, problems: list[Problem], *, study_folder: bool | None = None
) -> tuple[FormSet, tuple[FormFile, ...] | None]:
    """The forms of ``folder`` without a problem, and every form file with a code of its
    own (None when a study folder has no ``forms/`` yet), noting each problem.

    ``folder`` is a study folder when ``study_folder`` says so or, when it is None,
    when it has a ``forms/`` folder or a ``study.yaml``; else it holds the form files.
    Form paths are relative to ``folder``.
    """
    study_layout = (
        study_folder
        if study_folder is not None
        else (folder / FORMS_FOLDER).is_dir() or (folder / STUDY_FILE).is_file()
    )
    forms_folder = folder / FORMS_FOLDER if study_layout else folder
    codelists_path = folder / CODELISTS_FILE
    codelists = read_codelists(codelists_path, problems) if codelists_path.is_file() else {}
    if not forms_folder.is_dir():
        return FormSet(codelists, {}), None
    reads: list[_FormRead] = []
    for path in sorted(forms_folder.iterdir()):
        if path.suffix == ".yml":
            problems.append(Problem(path, None, None, "form files are named *.yaml"))
            continue
        if path.suffix != ".yaml" or not path.is_file():
            continue
        if path.name == CODELISTS_FILE:
            if study_layout:
                message = f"codelists belong in {CODELISTS_FILE} beside {STUDY_FILE}"
                problems.append(Problem(path, None, None, message))
            continue
        relative = path.relative_to(folder).as_posix()
        reads.append(_FormFileReader(path, relative, codelists, problems).read())
    if not reads and not study_layout:
        problems.append(Problem(folder, None, None, "holds no form files (*.yaml)"))
    form_files = _unique_forms(reads, problems)
    check_expressions([(read.definition, read.sites) for read in reads if read.definition])
    faulty = {problem.path for problem in problems}
    forms = {
        read.code: read.definition
        for read in reads
        if read.definition is not None and read.path not in faulty
    }
    return FormSet(codelists, forms), form_files


def read_form_file(
    path: Path,
    codelists: Mapping[str, Codelist],
    problems: list[Problem],
    *,
    relative_to: Path | None = None,
) -> FormDefinition | None:
    """One form file on its own, its expressions using its own items only; None (and
    its problems noted) when it has any. ``path`` of the definition is relative to
    ``relative_to`` if given, else the file's name."""
    relative = path.relative_to(relative_to).as_posix() if relative_to else path.name
    count = len(problems)
    read = _FormFileReader(path, relative, codelists, problems).read()
    if read.definition is not None:
        check_expressions([(read.definition, read.sites)])
    return read.definition if len(problems) == count else None


def read_codelists(path: Path, problems: list[Problem]) -> dict[str, Codelist]:
    """The codelists of a ``codelists.yaml`` file by code, noting each problem."""
    reader = FormNodeReader(path, problems)
    _, root = reader.compose()
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        reader.problem(root, "", "a codelists file must be a mapping with a 'codelists' list")
        return {}
    top = reader.mapping(root, "", CODELISTS_FILE_KEYS, CODELISTS_FILE_KEYS) or {}
    codelists: dict[str, Codelist] = {}
    seen: dict[str, yaml.Node] = {}
    for index, node in enumerate(reader.sequence(top.get("codelists"), "codelists")):
        where = f"codelists[{index}]"
        values = reader.mapping(node, where, CODELIST_KEYS, CODELIST_KEYS)
        if values is None:
            continue
        code_node = values.get("code")
        code = reader.code(code_node, at(where, "code"), ITEM_CODE, ITEM_CODE_RULE)
        if code and code_node is not None and code in seen:
            first = seen[code].start_mark.line + 1
            message = f"codelist {code!r} given twice (first on line {first})"
            reader.problem(code_node, at(where, "code"), message)
            continue
        name = reader.text(values.get("name"), at(where, "name"))
        choices = read_choices(reader, values.get("choices"), at(where, "choices"))
        if code and code_node is not None:
            seen[code] = code_node
            codelists[code] = Codelist(code, name, choices)
    return codelists


class _FormFileReader:
    """Reads one form file: its keys, items and edit checks (not yet its expressions'
    references, which may be to other forms)."""

    def __init__(
        self,
        path: Path,
        relative: str,
        codelists: Mapping[str, Codelist],
        problems: list[Problem],
    ) -> None:
        self.reader = FormNodeReader(path, problems)
        self.relative = relative
        self.codelists = codelists

    def read(self) -> _FormRead:
        r = self.reader
        source, root = r.compose()
        read = _FormRead(r.path, self.relative, source)
        if root is None:
            return read
        if not isinstance(root, yaml.MappingNode):
            r.problem(root, "", "a form file must be a mapping with a 'code'")
            return read
        top = r.mapping(root, "", FORM_KEYS, REQUIRED_FORM_KEYS)
        assert top is not None
        read.code_node = top.get("code")
        read.code = r.code(read.code_node, "code", FORM_CODE, FORM_CODE_RULE)
        entries = EntryReader(r, self.codelists, read.sites).entries(top.get("items"), "items")
        definition = FormDefinition(
            code=read.code,
            title=r.text(top.get("title"), "title", max_length=TITLE_LENGTH),
            version=r.text(
                top.get("version"),
                "version",
                expected="a version label",
                max_length=VERSION_LENGTH,
            ),
            description=r.text(top.get("description"), "description", allow_empty=True),
            entries=entries,
            path=self.relative,
        )
        items = {
            item.code: (item, group.code if group else None)
            for group, item in definition.iter_items()
            if item.code
        }
        checks = self._checks(top.get("checks"), items, read.sites)
        read.definition = dataclasses.replace(definition, checks=checks)
        return read

    def _checks(
        self,
        node: yaml.Node | None,
        items: Mapping[str, tuple[Item, str | None]],
        sites: list[ExpressionSite],
    ) -> tuple[EditCheck, ...]:
        r = self.reader
        checks = []
        seen: dict[str, yaml.Node] = {}
        for index, check_node in enumerate(r.sequence(node, "checks")):
            where = f"checks[{index}]"
            values = r.mapping(check_node, where, CHECK_KEYS, REQUIRED_CHECK_KEYS)
            if values is None:
                continue
            code_node = values.get("code")
            code = r.code(code_node, at(where, "code"), ITEM_CODE, ITEM_CODE_RULE)
            if code and code_node is not None:
                if code in seen:
                    first = seen[code].start_mark.line + 1
                    message = f"check code {code!r} given twice (first on line {first})"
                    r.problem(code_node, at(where, "code"), message)
                else:
                    seen[code] = code_node
            check_items, group = self._check_items(values.get("items"), at(where, "items"), items)
            condition_node = values.get("condition")
            condition = r.text(condition_node, at(where, "condition"), expected="an expression")
            if condition and isinstance(condition_node, yaml.ScalarNode):
                site = ExpressionSite(
                    r, at(where, "condition"), condition_node, "condition", code, group
                )
                sites.append(site)
            checks.append(
                EditCheck(
                    code=code,
                    condition=condition,
                    message=r.text(values.get("message"), at(where, "message")),
                    severity=cast(
                        CheckSeverity,
                        r.choice(values.get("severity"), at(where, "severity"), SEVERITIES, "hard"),
                    ),
                    items=check_items,
                    line=check_node.start_mark.line + 1,
                )
            )
        return tuple(checks)

    def _check_items(
        self, node: yaml.Node | None, where: str, items: Mapping[str, tuple[Item, str | None]]
    ) -> tuple[tuple[str, ...], str | None]:
        """The items a check's message goes on, and the repeating group they are in (a
        check on a group's items is worked out row by row)."""
        r = self.reader
        codes = r.texts(node, where, "an item code")
        if isinstance(node, yaml.SequenceNode) and not codes:
            r.problem(node, where, "needs at least one item: where the message is shown")
        # The group of the first item in one, and that item.
        check_group: tuple[str, str] | None = None
        for index, code in enumerate(codes):
            if not code:
                continue
            item_node = cast(yaml.SequenceNode, node).value[index]
            item, group = items.get(code, (None, None))
            if item is None:
                hint = suggestion(code, list(items))
                r.problem(item_node, f"{where}[{index}]", f"unknown item {code!r}{hint}")
            elif not item.holds_value:
                message = f"{code!r} is {item.type} text: a message goes on an item with a value"
                r.problem(item_node, f"{where}[{index}]", message)
            elif group is not None and check_group is None:
                check_group = (group, code)
            elif group is not None and check_group is not None and group != check_group[0]:
                message = (
                    f"{code!r} is in the repeating group {group!r}, but {check_group[1]!r} is"
                    f" in {check_group[0]!r}: a check is worked out in the rows of one group"
                )
                r.problem(item_node, f"{where}[{index}]", message)
        return codes, check_group[0] if check_group else None


def _unique_forms(reads: Sequence[_FormRead], problems: list[Problem]) -> tuple[FormFile, ...]:
    """A :class:`FormFile` for each form with a code no earlier file has; a later file
    with the same code is a problem."""
    forms: list[FormFile] = []
    files_by_code: dict[str, str] = {}
    for read in reads:
        if not read.code or read.code_node is None:
            continue
        if read.code in files_by_code:
            message = f"form {read.code!r} is also in {files_by_code[read.code]}"
            NodeReader(read.path, problems).problem(read.code_node, "code", message)
            continue
        files_by_code[read.code] = read.relative
        forms.append(FormFile(read.code, read.relative, hashlib.sha256(read.source).hexdigest()))
    return tuple(forms)


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (str(p.path), p.line or 0, p.column or 0))
