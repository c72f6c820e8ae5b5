"""`python -m mafine` runs the CLI."""

from mafine.cli import app

app(prog_name="mafine")
