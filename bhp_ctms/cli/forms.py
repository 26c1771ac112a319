"""``ctms forms …``: check CRF definitions, and import REDCap data dictionaries."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def forms() -> None:
    """Check CRF definition files, and turn REDCap data dictionaries into them."""


@forms.command("check")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def check(folder: Path) -> None:
    """Check every form file in FOLDER (a study folder, or a folder of form files).

    Every problem is printed as ``file:line:column: message``; the status is 1 when
    there is any.
    """
    from bhp_ctms.crf.definition import check_forms

    problems = check_forms(folder)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{folder}: the forms are valid")


@forms.command("import-redcap")
@click.argument("dictionary", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder to write the form files to (its forms/ subfolder).",
)
def import_redcap(dictionary: Path, out: Path) -> None:
    """Turn a REDCap data dictionary (CSV) into form files in OUT/forms/.

    Each instrument becomes one form file. Fields that cannot be imported are listed
    with their row; a malformed dictionary is reported by row and column and nothing
    is written.
    """
    from bhp_ctms.crf.redcap import DictionaryError, import_dictionary

    try:
        result = import_dictionary(dictionary, out)
    except DictionaryError as error:
        for problem in error.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    for form in result.forms:
        click.echo(f"{form.path}: {_plural(form.item_count, 'item')}")
    for skipped in result.skipped:
        click.echo(f"not imported: {skipped}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(
        f"{_plural(len(result.forms), 'form')}, {_plural(result.item_count, 'item')} from "
        f"{_plural(result.field_count, 'field')} ({len(result.skipped)} not imported)"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


COMMANDS = [forms]
