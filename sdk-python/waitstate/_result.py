"""What gate() answers."""
from __future__ import annotations

import sys
from typing import NamedTuple

if sys.version_info >= (3, 8):
    from typing import Literal
else:  # pragma: no cover
    from typing_extensions import Literal

__all__ = ["GateResult", "Reason", "REASONS", "RESULTS"]

Reason = Literal[
    "allowed", "over_weight", "tag_blocked", "global_block", "kill_signal", "lease_expired", "cap_exceeded", "suspended"
]

# The wire names, in the order of the Rust core's `Reason` enum: the native
# engine answers an index into RESULTS instead of building an object per call.
REASONS: "tuple[Reason, ...]" = (
    "allowed",
    "lease_expired",
    "cap_exceeded",
    "suspended",
    "kill_signal",
    "tag_blocked",
    "global_block",
    "over_weight",
)


class GateResult(NamedTuple):
    """``allowed`` and ``reason`` (``"allowed"``, ``"over_weight"``, ``"tag_blocked"``,
    ``"global_block"``, ``"kill_signal"``, ``"lease_expired"``, ``"cap_exceeded"``, ``"suspended"``).

    Results are shared, immutable values: gate() allocates nothing.
    """

    allowed: bool
    reason: Reason


# Every result gate() can give, built once: RESULTS[2 * i + allowed] for REASONS[i].
RESULTS: "tuple[GateResult, ...]" = tuple(GateResult(allowed, reason) for reason in REASONS for allowed in (False, True))


def result_of(allowed: bool, reason: str) -> GateResult:
    """The shared result for a decision (one from the agent, say); unknown reasons get a new one."""
    try:
        return RESULTS[2 * REASONS.index(reason) + (1 if allowed else 0)]  # type: ignore[arg-type]
    except ValueError:
        return GateResult(bool(allowed), reason)  # type: ignore[arg-type]
