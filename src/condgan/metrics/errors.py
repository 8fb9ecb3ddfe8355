"""The evaluation error type."""
from __future__ import annotations


class EvalError(ValueError):
    """Evaluation cannot run (missing weights, bad metric name, unusable run dir); one line naming the culprit."""
