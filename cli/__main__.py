"""``python -m cli``: the same as the ``orderly`` command."""

from cli.main import app

app(prog_name="orderly")
