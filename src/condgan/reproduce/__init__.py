"""``condgan reproduce``: the papers' tables, row by row, as presets, commands and paper figures."""
from __future__ import annotations

from ..config import ConfigError, did_you_mean
from .harness import ReproduceError, describe, jobs, markdown, run
from .paper_tables import PAPER_TABLES
from .tables import SMALL_TABLES, Protocol, Row, Table

TABLES: dict[str, Table] = {t.name: t for t in (*SMALL_TABLES, *PAPER_TABLES)}

__all__ = ["TABLES", "Protocol", "ReproduceError", "Row", "Table", "describe", "get_table", "jobs", "markdown",
           "run"]


def get_table(name: str) -> Table:
    """The table called ``name``; an unknown name is a one-line error with the closest."""
    if name not in TABLES:
        raise ConfigError(f"unknown table '{name}'{did_you_mean(name, TABLES)}; `condgan reproduce` lists them")
    return TABLES[name]
