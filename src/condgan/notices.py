"""condgan's warnings: a category of their own, so the command line prints them as one ``condgan: warning:``
line on stderr and library users can filter them (``warnings.simplefilter("error", CondganWarning)``)."""
from __future__ import annotations

import sys
import warnings


class CondganWarning(UserWarning):
    """Something worth a user's attention that does not stop the run (a skipped file, a weak classifier)."""


def warn(message: str) -> None:
    """Emit ``message`` as a :class:`CondganWarning`, attributed to the caller."""
    warnings.warn(message, CondganWarning, stacklevel=3)


def print_warnings_as_lines() -> None:
    """Show CondganWarnings as ``condgan: warning: <message>`` on stderr (other warnings keep their format)."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        if issubclass(category, CondganWarning):
            print(f"condgan: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
