"""The SDK's one error type."""
from __future__ import annotations

from typing import Optional

__all__ = ["WaitstateError"]


class WaitstateError(Exception):
    """Raised only for bad configuration (``code == "INVALID_OPTIONS"``, ``field`` names it).

    Every failure after construction (network, control plane, bad telemetry
    values) reaches ``WaitstateConfig.on_error`` as a ``WaitstateError`` and is
    never raised into the application.
    """

    code: str
    """A stable SNAKE_CASE code: INVALID_OPTIONS, AUTH_FAILED, PULSE_FAILED, PULSE_REJECTED,
    POLICY_FETCH_FAILED, INVALID_POLICY, SAFE_MODE, INVALID_VALUE, INVALID_METRIC_NAME,
    TOO_MANY_METRICS, SHUTDOWN_FLUSH_FAILED, DUPLICATE_INSTANCE, AGENT_UNREACHABLE."""
    status: int
    """The HTTP status behind the error, 0 without one."""
    field: Optional[str]
    """The configuration field at fault (INVALID_OPTIONS only)."""

    def __init__(self, code: str, message: str, status: int = 0, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.field = field

    def __repr__(self) -> str:
        return f"WaitstateError(code={self.code!r}, message={self.message!r}, status={self.status})"
