"""Run logging: metrics as JSONL (always) and TensorBoard (optional), and a progress bar.

This package is ``worldmodels.logging``; inside the library, reach the standard library's
module as ``import logging as _pylogging``.
"""

from worldmodels.logging.metrics import METRICS_FILE, MetricsLogger, read_metrics, truncate_after
from worldmodels.logging.progress import Progress, format_postfix

__all__ = [
    "METRICS_FILE",
    "MetricsLogger",
    "Progress",
    "format_postfix",
    "read_metrics",
    "truncate_after",
]
