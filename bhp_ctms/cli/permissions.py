"""``ctms permissions``: the role → permission matrix, as printed in README.md."""

from __future__ import annotations

import click

from bhp_ctms.permissions import AUTHENTICATED_PERMISSIONS, MATRIX, Permissions, Role


def permission_matrix_markdown() -> str:
    """The matrix as a Markdown table, from :data:`bhp_ctms.permissions.MATRIX`."""
    roles = list(Role)
    header = "| permission | " + " | ".join(role.label for role in roles) + " |"
    rule = "|---|" + "---|" * len(roles)
    rows = [header, rule]
    for permission in Permissions:
        everyone = permission in AUTHENTICATED_PERMISSIONS
        cells = ["✓" if everyone or permission in MATRIX[role] else "" for role in roles]
        note = " (every signed-in user)" if everyone else ""
        rows.append(
            f"| `{permission.value}`: {permission.description}{note} | " + " | ".join(cells) + " |"
        )
    return "\n".join(rows)


@click.command()
def permissions() -> None:
    """Print the role → permission matrix (Markdown)."""
    click.echo(permission_matrix_markdown())


COMMANDS = [permissions]
