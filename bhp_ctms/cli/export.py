"""``ctms export``: a bundle of a study's dataset snapshot, written to a file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import click

from bhp_ctms.audit.services import record_event
from bhp_ctms.cli import CommandContext
from bhp_ctms.cli._transaction import command_transaction
from bhp_ctms.exports.bundles import FORMATS, BundleError
from bhp_ctms.exports.services import ExportRefused, build_bundle, export_options
from bhp_ctms.exports.snapshots import SnapshotError, latest_snapshot, take_snapshot
from bhp_ctms.exports.stream import SnapshotCorrupt
from bhp_ctms.studies.services import find_study

INTERIM_DESCRIPTION = "Interim snapshot taken with ctms export --interim"


def _formats(value: str) -> list[str]:
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in (*FORMATS, "all")]
    if unknown or not names:
        raise click.BadParameter(
            f"{', '.join(unknown) or value!r}: choose from {', '.join(FORMATS)} or all "
            "(several with commas: csv,odm)",
            param_hint="--format",
        )
    return names


@click.command("export")
@click.option("--study", "study_code", required=True, help="The study's code, e.g. DEMO.")
@click.option(
    "--format",
    "format_names",
    required=True,
    help=f"{'|'.join(FORMATS)}|all, or several with commas (csv,odm).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="The zip file to write.",
)
@click.option(
    "--interim",
    is_flag=True,
    help="Take an interim snapshot now and export it (marked INTERIM in the bundle).",
)
@click.option(
    "--description",
    default=INTERIM_DESCRIPTION,
    show_default=True,
    help="With --interim: what the snapshot is for.",
)
@click.option("--unblinded", is_flag=True, help="Include each participant's arm.")
@click.option("--labels", is_flag=True, help="CSV: a label column beside each coded value.")
@click.option(
    "--audit-trail", is_flag=True, help="ODM: the audit trail of every value, and signatures."
)
@click.pass_obj
def export(
    context: CommandContext,
    study_code: str,
    format_names: str,
    out: Path,
    interim: bool,
    description: str,
    unblinded: bool,
    labels: bool,
    audit_trail: bool,
) -> None:
    """Export a study's dataset snapshot as a zip bundle with a manifest of SHA-256s.

    The snapshot is the study's lock snapshot (or, when it has none, its newest interim
    snapshot); with --interim, an interim snapshot taken now. Blinded unless
    --unblinded is given. The export is recorded in the audit trail.
    """
    formats = _formats(format_names)
    partial = out.with_name(out.name + ".part")
    try:
        with command_transaction(context) as request:
            db = request.db
            study = find_study(db, study_code)
            if study is None:
                raise click.ClickException(f"no study with code {study_code!r}")
            options = export_options(
                formats, blinded=not unblinded, labels=labels, audit_trail=audit_trail
            )
            if interim:
                snapshot = take_snapshot(
                    db,
                    study,
                    kind="interim",
                    description=description,
                    secret_key=context.settings.secret_key,
                )
            else:
                found = latest_snapshot(db, study.id)
                if found is None:
                    raise click.ClickException(
                        f"study {study.code} has no dataset snapshot yet: lock the study (its "
                        "lock snapshot is exported) or use --interim to take one now"
                    )
                snapshot = found
            with partial.open("wb") as file:
                bundle = build_bundle(db, snapshot, options, file)
            digest = hashlib.sha256()
            with partial.open("rb") as file:
                for piece in iter(lambda: file.read(1 << 20), b""):
                    digest.update(piece)
            sha256 = digest.hexdigest()
            record_event(
                db,
                request.audit_actor,
                "dataset_export.written",
                entity_type="dataset_snapshot",
                entity_id=snapshot.id,
                study_id=study.id,
                details={
                    "snapshot": snapshot.id,
                    "kind": snapshot.kind.value,
                    "options": options.to_json(),
                    "bundle_sha256": sha256,
                    "file": out.name,
                },
            )
            kind = "INTERIM snapshot" if snapshot.interim else "lock snapshot"
            snapshot_line = (
                f"Study {study.code}, {kind} #{snapshot.id} "
                f"(content SHA-256 {snapshot.content_sha256}), "
                f"{'blinded' if options.blinded else 'UNBLINDED'}"
            )
    except (ExportRefused, BundleError, SnapshotError, SnapshotCorrupt) as error:
        partial.unlink(missing_ok=True)
        raise click.ClickException(str(error)) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
    click.echo(snapshot_line)
    click.echo(f"Wrote {out}")
    click.echo(f"SHA-256 {sha256}")
    for written in bundle.files:
        click.echo(f"  {written.sha256}  {written.size:>12}  {written.name}")


COMMANDS = [export]
