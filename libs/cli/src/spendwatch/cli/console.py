"""Terminal output of the CLI: plain text for people, one red line for errors."""

from __future__ import annotations

from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

# soft_wrap: never re-wrap service log lines; highlight off: they carry their own meaning.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `message` on stderr, its first line in red, and exit with `code`, no traceback."""
    first, _, details = message.partition("\n")
    err.print(Text(first, style="bold red"))
    if details:
        err.print(Text(details))
    raise typer.Exit(code)


def settings_problem(exc: ValidationError) -> str:
    """One line naming each invalid environment variable and why."""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return f"invalid settings: {problems}"
