"""``ctms randomisation ...``: the statistician's tools for a study's randomisation scheme."""

from __future__ import annotations

import secrets

import click
from sqlalchemy import select

from bhp_ctms.cli import CommandContext
from bhp_ctms.randomisation.methods.simulate import simulate as run_simulation
from bhp_ctms.randomisation.schemes import study_scheme
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.services import find_study


@click.group()
def randomisation() -> None:
    """Work with a study's randomisation scheme."""


@randomisation.command("simulate")
@click.option("--study", "study_code", required=True, help="The study's code, e.g. DEMO.")
@click.option(
    "--n",
    "participants",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Participants recruited in each simulated trial.",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="How many trials to simulate.",
)
@click.option(
    "--seed",
    default=None,
    help="Any text; the same seed gives the same report (default: a new random seed).",
)
@click.pass_obj
def simulate(
    context: CommandContext, study_code: str, participants: int, trials: int, seed: str | None
) -> None:
    """Simulate the study's randomisation scheme and print the imbalance it leaves.

    The scheme is the one of the study's latest protocol version. Each simulated
    participant's site and factor levels are drawn uniformly at random from the
    study's sites and the choices of each factor's CRF item. Nothing is stored.
    """
    seed = seed or secrets.token_hex(8)
    request = context.env["request"]
    with request.tm:
        db = request.db
        study = find_study(db, study_code)
        if study is None:
            raise click.ClickException(f"no study with code {study_code!r}")
        try:
            bound = study_scheme(db, study)
        except (KeyError, ValueError) as error:
            raise click.ClickException(
                f"study {study.code}'s randomisation scheme cannot be used: {error}"
            ) from None
        if bound is None:
            raise click.ClickException(
                f"study {study.code} is not randomised: its protocol has no randomisation section"
            )
        sites = list(
            db.scalars(select(Site.code).where(Site.study_id == study.id).order_by(Site.code))
        )
        if not sites:
            raise click.ClickException(f"study {study.code} has no sites: add one to simulate")
        factor_levels = {}
        for factor in bound.scheme.item_factors:
            choices = [code for code, _ in bound.levels.get(factor.code, ())]
            if not choices:
                raise click.ClickException(
                    f"factor {factor.code!r} has no levels: its item {factor.item} must be a"
                    " choice item of a form that the study's latest protocol version lists"
                )
            factor_levels[factor.code] = choices
        scheme = bound.scheme
    click.echo(f"Study {study_code}: randomisation simulated, nothing stored.")
    simulation = run_simulation(scheme, sites, factor_levels, participants, trials, seed)
    click.echo(simulation.report(), nl=False)


COMMANDS = [randomisation]
