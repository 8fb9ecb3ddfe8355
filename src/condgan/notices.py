"""What the console shows besides results: condgan's warnings, a category of their own so library users can filter
them (``warnings.simplefilter("error", CondganWarning)``), which the command line prints, condgan's and its
libraries' (PIL's decompression-bomb warning, say), as one ``condgan: warning:`` line on stderr; and whether a
progress bar is worth drawing."""
from __future__ import annotations

import shutil
import sys
import warnings


class CondganWarning(UserWarning):
    """Something worth a user's attention that does not stop the run (a skipped file, a weak classifier)."""


def warn(message: str) -> None:
    """Emit ``message`` as a :class:`CondganWarning`, attributed to the caller."""
    warnings.warn(message, CondganWarning, stacklevel=3)


def warning_line(message: Warning | str, category: type[Warning]) -> str:
    """``condgan: warning: <message>`` in one line; another library's warning says its category too."""
    text = " ".join(str(message).split())
    own = issubclass(category, CondganWarning)
    return f"condgan: warning: {text}" + ("" if own else f" ({category.__name__})")


def print_warnings_as_lines() -> None:
    """Show every warning as one :func:`warning_line` on stderr: a user of the command line sees no Python
    source lines or file:line prefixes, whichever library warned."""

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        print(warning_line(message, category), file=sys.stderr if file is None else file)

    warnings.showwarning = show


def progress_bar_wanted(no_progress: bool = False) -> bool:
    """A bar only where someone watches it: stderr (tqdm's stream) is a terminal at least 20 columns wide.

    Elsewhere (a pipe, a log file, a batch job, a zero-width terminal) a redrawn bar is a flood of carriage
    returns, or nothing at all; training prints a plain line every ``train.log_every`` steps instead."""
    if no_progress or sys.stderr is None or not sys.stderr.isatty():
        return False
    return shutil.get_terminal_size(fallback=(0, 0)).columns >= 20
