"""The custom metric naming rule every SDK shares."""
from __future__ import annotations

import re

RESERVED_METRIC_NAMES = ("latency", "p50_latency", "p95_latency", "p99_latency", "errors", "error_rate", "rps")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")


def is_valid_custom_metric_name(name: object) -> bool:
    """Lowercase letters, digits and '_', a letter first, at most 63 characters, not a reserved name."""
    return isinstance(name, str) and _NAME.match(name) is not None and name not in RESERVED_METRIC_NAMES
