"""``ctms odm …``: import a study (and its data) from CDISC ODM, and check ODM files."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from bhp_ctms.audit.capture import ReasonRequired
from bhp_ctms.cli import CommandContext
from bhp_ctms.cli._transaction import cli_actor, command_transaction
from bhp_ctms.crf.entry import EntryLocked
from bhp_ctms.locks.state import DataLocked
from bhp_ctms.odm.importer import (
    add_default_site,
    import_clinical_data,
    read_and_plan,
    summary,
    write_folder,
)
from bhp_ctms.odm.plan import StudyPlan
from bhp_ctms.odm.reader import OdmFile, OdmImportError
from bhp_ctms.odm.schema import schema_problems
from bhp_ctms.studies.definition import DefinitionError, Problem
from bhp_ctms.studies.loading import load_study

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def odm() -> None:
    """Import studies from CDISC ODM 1.3.2 files (and REDCap's project XML), and check
    ODM files against the schema."""


def _refuse(problems: Sequence[Problem], what: str) -> None:
    """Print every problem as ``path:line:col: message``, say what happened, exit 1."""
    for problem in problems:
        click.echo(str(problem), err=True)
    click.echo(what, err=True)
    sys.exit(1)


def _warning(problem: Problem) -> str:
    where = str(problem.path) + (f":{problem.line}" if problem.line else "")
    return f"{where}: warning: {problem.message}"


@contextmanager
def _folder(given: Path | None) -> Iterator[Path]:
    """The study folder to write: the one given (new or empty), or a temporary one."""
    if given is None:
        with tempfile.TemporaryDirectory(prefix="ctms-odm-study-") as scratch:
            yield Path(scratch)
        return
    if given.exists() and (not given.is_dir() or any(given.iterdir())):
        raise click.ClickException(
            f"{given} already exists and is not an empty folder: give a new folder, so that "
            "nothing in it is overwritten"
        )
    yield given


@odm.command("import")
@click.argument("file", type=FILE)
@click.option(
    "--study-folder",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the study folder (study.yaml, codelists.yaml, forms/) here; a new or empty "
    "folder. Without it the folder is temporary.",
)
@click.option(
    "--load/--no-load",
    default=True,
    show_default=True,
    help="Load the study folder, as ctms study load does.",
)
@click.option(
    "--data",
    is_flag=True,
    help="Also import the file's clinical data: participants, form entries and values.",
)
@click.pass_obj
def import_file(
    context: CommandContext, file: Path, folder: Path | None, load: bool, data: bool
) -> None:
    """Import the study that FILE (CDISC ODM 1.3.2, or REDCap's project XML) defines.

    Its metadata become a study folder (checked as ctms study check checks one), which
    is loaded unless --no-load. With --data, its subjects become participants (the
    SubjectKey is the study ID) and their values are saved as form entries, each change
    in the audit trail under your name. A file that is not well-formed or not valid ODM
    is refused with every problem by line, and nothing is imported; REDCap's project
    XML, which is not valid ODM, is read leniently, each of its faults a warning.
    """
    if data and not load:
        raise click.UsageError("--data needs the study loaded: leave out --no-load")
    if folder is None and not load:
        raise click.UsageError("with --no-load, give --study-folder to write the study to")
    with _folder(folder) as target:
        try:
            odm_file, plan = read_and_plan(file, target)
        except OdmImportError as error:
            _refuse(error.problems, f"{file}: not imported: nothing was written or loaded.")
            return
        if data:
            add_default_site(plan, odm_file)
        for problem in odm_file.warnings + plan.warnings:
            click.echo(_warning(problem), err=True)
        for note in plan.notes:
            click.echo(f"note: {note}", err=True)
        kind = "REDCap project XML" if odm_file.redcap else "CDISC ODM"
        items = sum(
            1 for form in plan.forms.values() for item in form.definition.items if item.holds_value
        )
        click.echo(
            f"{file}: {kind}, study {plan.code}: {len(plan.forms)} forms, {items} items, "
            f"{len(plan.events)} events"
        )
        if not load:
            try:
                write_folder(None, odm_file, plan, target)
            except OdmImportError as error:
                _refuse(error.problems, f"{file}: the study folder {target} has problems.")
            click.echo(f"Wrote the study folder {target}.")
            return
        _load(context, file, odm_file, plan, target, data, folder is not None)


def _load(
    context: CommandContext,
    file: Path,
    odm_file: OdmFile,
    plan: StudyPlan,
    target: Path,
    data: bool,
    kept: bool,
) -> None:
    """Write the folder, load it and import the data in one transaction."""
    lines: list[str] = []
    try:
        with command_transaction(context) as request:
            write_folder(request.db, odm_file, plan, target)
            if kept:
                lines.append(f"Wrote the study folder {target}.")
            result = load_study(request.db, cli_actor(), target)
            lines.append(result.describe())
            if data:
                imported = import_clinical_data(
                    request.db, context.settings, cli_actor(), odm_file, plan
                )
                for problem in imported.warnings:
                    click.echo(_warning(problem), err=True)
                lines.append(summary(imported))
    except OdmImportError as error:
        _refuse(error.problems, f"{file}: the study folder has problems: nothing was loaded.")
    except DefinitionError as error:
        _refuse(error.problems, f"{file}: the study cannot be loaded: nothing was loaded.")
    except (ReasonRequired, DataLocked, EntryLocked) as error:
        raise click.ClickException(f"{file}: {error}: nothing was imported") from None
    click.echo("\n".join(lines))


@odm.command("validate")
@click.argument("files", type=FILE, nargs=-1, required=True)
def validate(files: tuple[Path, ...]) -> None:
    """Check each of FILES against the CDISC ODM 1.3.2 schema (no network is used).

    Every problem is printed as ``file:line: message``; the status is 1 when there is
    any.
    """
    failed = False
    for file in files:
        problems = schema_problems(file)
        for problem in problems:
            click.echo(str(problem), err=True)
        if problems:
            failed = True
        else:
            click.echo(f"{file}: valid ODM 1.3.2")
    if failed:
        sys.exit(1)


COMMANDS = [odm]
