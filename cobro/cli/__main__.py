"""`python -m cobro.cli ...` runs the `cobro` command."""

from cobro.cli import app

app()
