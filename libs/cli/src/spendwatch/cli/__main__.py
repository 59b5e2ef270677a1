"""`python -m spendwatch.cli`."""

from spendwatch.cli.main import app

app(prog_name="spendwatch")
