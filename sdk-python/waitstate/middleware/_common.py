"""What the integrations share: options, reading a request's tag and weight, the 429 body, reporting."""
from __future__ import annotations

import json
import math
import re
import time
from typing import Any, Callable, Generic, Optional, TypeVar, Union

from .._errors import WaitstateError
from .._result import GateResult

__all__ = [
    "DEFAULT_TAG_HEADER",
    "DEFAULT_RETRY_AFTER",
    "JSON_CONTENT_TYPE",
    "GateOptions",
    "denial_body",
    "parse_weight",
    "report_completion",
]

Req = TypeVar("Req")
TagSource = Union[str, Callable[[Req], Optional[str]]]
WeightSource = Union[str, Callable[[Req], Optional[float]]]

DEFAULT_TAG_HEADER = "x-waitstate-tag"
DEFAULT_RETRY_AFTER = 60
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# Why a request was turned away, for people reading the 429 body (the Node middlewares' words).
_DENIAL_MESSAGES = {
    "allowed": "the request was allowed",
    "lease_expired": "the policy lease expired and safe mode is limiting traffic",
    "cap_exceeded": "the plan's usage cap is exceeded",
    "suspended": "the account is suspended",
    "kill_signal": "the kill switch is on for all traffic",
    "tag_blocked": "traffic for this tag is blocked by policy",
    "global_block": "all traffic is blocked by policy",
    "over_weight": "the request's weight is over the current limit",
}


def _denial_json(reason: str) -> bytes:
    why = _DENIAL_MESSAGES.get(reason, "the policy denied it")
    body = {"error": {"code": "RATE_LIMITED", "message": f"Too many requests: {why} (reason: {reason}).", "reason": reason}}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# Built once: turning a request away under load costs no more than letting one through.
_DENIAL_BODIES = {reason: _denial_json(reason) for reason in _DENIAL_MESSAGES}


def denial_body(reason: str) -> bytes:
    """The 429 body: ``{"error":{"code":"RATE_LIMITED","message","reason"}}``, UTF-8 JSON."""
    body = _DENIAL_BODIES.get(reason)
    return body if body is not None else _denial_json(reason)


# A decimal number, as a header carries one (no "nan", "inf", "1_000" or hex).
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*\Z")


def parse_weight(value: Optional[str]) -> Optional[float]:
    """A header's weight: a finite decimal number, else None (weight 1). ``""`` is not 0."""
    if not value or _NUMBER.match(value) is None:
        return None
    weight = float(value)
    return weight if math.isfinite(weight) else None


def _invalid(where: str, field: str, message: str) -> WaitstateError:
    return WaitstateError("INVALID_OPTIONS", f"{where}: {field} {message}", field=field)


def _describe(value: object) -> str:
    return repr(value) if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__


def check_client(where: str, client: object) -> Any:
    if not all(callable(getattr(client, name, None)) for name in ("gate", "report_latency", "report_error")):
        raise _invalid(where, "client", f"must be a WaitstateClient (with gate, report_latency and report_error), got {_describe(client)}")
    return client


HeaderReader = Callable[[Req, str], Optional[str]]


class GateOptions(Generic[Req]):
    """Options checked once, at creation, turned into the functions each request calls.

    ``tag_from``: a header name (case-insensitive) or a function of the request;
    a missing or empty value, or a function that raises, means no tag (``__default__``).
    ``weight_from``: the same for the weight; anything but a finite number means 1.
    ``retry_after``: the ``Retry-After`` seconds on a 429 (rounded up).
    """

    __slots__ = ("client", "tag_of", "weight_of", "retry_after", "on_denied")

    def __init__(
        self,
        where: str,
        client: object,
        read_header: "HeaderReader[Req]",
        tag_from: "Optional[TagSource[Req]]" = None,
        weight_from: "Optional[WeightSource[Req]]" = None,
        retry_after: float = DEFAULT_RETRY_AFTER,
        on_denied: Optional[Callable[..., Any]] = None,
    ) -> None:
        self.client = check_client(where, client)
        if tag_from is not None and not ((isinstance(tag_from, str) and tag_from) or callable(tag_from)):
            raise _invalid(where, "tag_from", f"must be a header name or a function (request) -> str, got {_describe(tag_from)}")
        if weight_from is not None and not ((isinstance(weight_from, str) and weight_from) or callable(weight_from)):
            raise _invalid(where, "weight_from", f"must be a header name or a function (request) -> float, got {_describe(weight_from)}")
        if not (isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool) and math.isfinite(retry_after) and retry_after >= 0):
            raise _invalid(where, "retry_after", f"must be a finite number of seconds >= 0, got {_describe(retry_after)}")
        if on_denied is not None and not callable(on_denied):
            raise _invalid(where, "on_denied", f"must be a function, got {_describe(on_denied)}")
        self.tag_of: Callable[[Req], Optional[str]] = _tag_reader(tag_from or DEFAULT_TAG_HEADER, read_header)
        self.weight_of: Callable[[Req], Optional[float]] = (
            _no_weight if weight_from is None else _weight_reader(weight_from, read_header)
        )
        self.retry_after = str(math.ceil(retry_after))
        self.on_denied = on_denied

    def gate(self, request: Req) -> "tuple[Optional[str], GateResult]":
        """The request's tag and the gate's answer for it."""
        tag = self.tag_of(request)
        weight = self.weight_of(request)
        client = self.client
        if weight is None:
            return tag, client.gate(tag or "__default__")
        return tag, client.gate(tag or "__default__", weight)


def _no_weight(_request: object) -> None:
    return None


def _tag_reader(source: "TagSource[Req]", read_header: "HeaderReader[Req]") -> Callable[[Req], Optional[str]]:
    if isinstance(source, str):
        name = source.lower()
        return lambda request: read_header(request, name) or None

    def from_function(request: Req) -> Optional[str]:
        try:
            tag = source(request)  # type: ignore[operator]
        except Exception:  # noqa: BLE001 -- a broken tag function must not fail the request
            return None
        return tag if isinstance(tag, str) and tag else None

    return from_function


def _weight_reader(source: "WeightSource[Req]", read_header: "HeaderReader[Req]") -> Callable[[Req], Optional[float]]:
    if isinstance(source, str):
        name = source.lower()
        return lambda request: parse_weight(read_header(request, name))

    def from_function(request: Req) -> Optional[float]:
        try:
            weight = source(request)  # type: ignore[operator]
        except Exception:  # noqa: BLE001 -- a broken weight function must not fail the request
            return None
        if isinstance(weight, (int, float)) and not isinstance(weight, bool) and math.isfinite(weight):
            return float(weight)
        return None

    return from_function


def report_completion(client: Any, tag: Optional[str], start: float, status: int) -> None:
    """Reports a finished request: its latency since ``start`` (perf_counter), and an error if 5xx."""
    client.report_latency((time.perf_counter() - start) * 1000, tag)
    if status >= 500:
        client.report_error(tag)


