"""``condgan reproduce``: the papers' tables, row by row, as presets, commands and paper figures."""
from __future__ import annotations

import difflib

from ..config import ConfigError
from .harness import ReproduceError, describe, jobs, markdown, run
from .paper_tables import PAPER_TABLES
from .tables import Protocol, Row, Table
from .tables import SMALL_TABLES

TABLES: dict[str, Table] = {t.name: t for t in (*SMALL_TABLES, *PAPER_TABLES)}

__all__ = ["TABLES", "Protocol", "ReproduceError", "Row", "Table", "describe", "get_table", "jobs", "markdown",
           "run"]


def get_table(name: str) -> Table:
    """The table called ``name``; an unknown name is a one-line error with the closest."""
    if name not in TABLES:
        close = difflib.get_close_matches(name, TABLES, n=1, cutoff=0.4)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown table '{name}'{hint}; `condgan reproduce` lists them")
    return TABLES[name]
