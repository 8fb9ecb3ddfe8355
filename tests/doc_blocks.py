"""The fenced blocks of the README and the manual (docs/*.md), with the directives written above each.

Conventions (docs/index.md says them for writers): every fence names its language; ``bash`` and ``python`` blocks
are run by tests/test_docs.py unless ``<!-- illustrative: REASON -->`` stands right above them (above the
README's set-up markers there); ``yaml`` blocks are parsed as configs, and written to NAME first where
``<!-- file: NAME -->`` stands above them; ``text`` blocks (synopses, output, trees) are never run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("bash", "python", "yaml", "text")
RUNNABLE = ("bash", "python")
SETUP_MARKERS = ("<!-- demo-command -->", "<!-- test-command -->")  # what .ci/run and people read
DIRECTIVE = re.compile(r"<!--\s*(illustrative|file):\s*(.*?)\s*-->")


@dataclass
class Block:
    page: str  # relative to the repository root
    line: int  # the opening fence's line, 1-based
    lang: str
    text: str
    illustrative: str | None = None  # the reason, where it is marked so
    file: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` in order (an unterminated fence is a block up to the end)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        fence = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence.group(2)), len(lines))
        block = Block(str(path.relative_to(ROOT)), i + 1, fence.group(3), "\n".join(lines[i + 1:end]) + "\n")
        _read_directives(block, lines, i)
        out.append(block)
        i = end + 1
    return out


def _read_directives(block: Block, lines: list[str], fence: int) -> None:
    """The directives on the lines right above the fence (the README's set-up markers stepped over)."""
    j = fence - 1
    while j >= 0 and lines[j].strip() in SETUP_MARKERS:
        j -= 1
    while j >= 0 and (m := DIRECTIVE.fullmatch(lines[j].strip())):
        if m.group(1) == "illustrative":
            block.illustrative = m.group(2)
        else:
            block.file = m.group(2)
        j -= 1
