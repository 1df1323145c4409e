"""``orderly``: the Typer app; each resource is a sub-command group."""

from __future__ import annotations

import typer

from cli import demo, imports, keys

app = typer.Typer(
    name="orderly",
    help="Orderly administration. Reads ORDERLY_* settings (e.g. ORDERLY_DATABASE_URL).",
    no_args_is_help=True,
)
app.add_typer(keys.app, name="keys")
imports.register(app)  # import, import-template, import-cancel
demo.register(app)  # seed-demo
