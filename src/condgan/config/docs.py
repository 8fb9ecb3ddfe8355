"""What each config key is: type, default, choices and meaning, read from the schema's own source.

The meaning of a field is the comment on its line in ``config/schema.py``, else the comment lines right above
it, so the schema stays the one place a key is described (``condgan config keys`` prints this).
"""
from __future__ import annotations

import ast
import inspect
import io
import tokenize
from dataclasses import MISSING, dataclass

from . import schema
from .keys import section_fields


@dataclass(frozen=True)
class KeyDoc:
    key: str  # dotted, e.g. loss.cond
    type: str  # e.g. float | None
    default: object
    choices: tuple[str, ...]  # () when the key takes any value of its type
    meaning: str


def key_docs() -> list[KeyDoc]:
    """Every config key, sorted, with what the schema says of it."""
    meanings = _field_comments()
    docs = []
    for key, (section, f, hint) in sorted(section_fields().items()):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        docs.append(KeyDoc(key, _type_name(hint), default, tuple(f.metadata.get("choices", ())),
                           meanings.get((type(section).__name__, f.name), "")))
    return docs


def _type_name(hint: object) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _field_comments() -> dict[tuple[str, str], str]:
    """(dataclass name, field name) -> the field's comment in the schema's source."""
    source = inspect.getsource(schema)
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(tok.start[0])
    out = {}
    for cls in (n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            own = [comments[n] for n in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1) if n in comments]
            above, n = [], stmt.lineno - 1
            while n in comments and n not in code_lines:  # a comment block right above the field
                above.insert(0, comments[n])
                n -= 1
            out[(cls.name, stmt.target.id)] = " ".join(own or above)
    return out
