"""FastAPI (and Starlette): a dependency that gates, and an HTTP middleware that reports.

>>> gate = create_dependency(client)
>>> app.middleware("http")(create_response_hook(client))
>>> @app.get("/search")
... async def search(_=Depends(gate)): ...

The dependency denies with a 429 (``Retry-After``); the response hook gives
that 429 the typed body of every WaitState middleware and reports each
request's latency (and an error on 5xx). Routes without the dependency are
reported too, not gated. ``tag_from`` / ``weight_from`` functions receive the
``Request``.
"""
from __future__ import annotations

import json
import time
from typing import Any, Awaitable, Callable, Optional

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .._result import GateResult
from ._common import JSON_CONTENT_TYPE, GateOptions, TagSource, WeightSource, denial_body, report_completion

__all__ = ["create_dependency", "create_response_hook", "WaitstateDenied"]

_STATE_TAG = "waitstate_tag"
_STATE_DENIED = "waitstate_denied"


def _read_header(request: Request, name: str) -> Optional[str]:
    return request.headers.get(name)


class WaitstateDenied(HTTPException):
    """What the dependency raises for a denied request: a 429 with ``Retry-After``.

    Its ``detail`` is the typed error object; the response hook answers with the
    exact body of the other middlewares, ``{"error":{"code":"RATE_LIMITED",…}}``.
    """

    def __init__(self, result: GateResult, retry_after: str) -> None:
        super().__init__(429, detail=json.loads(denial_body(result.reason))["error"], headers={"Retry-After": retry_after})
        self.result = result


def create_dependency(
    client: Any,
    *,
    tag_from: "Optional[TagSource[Request]]" = None,
    weight_from: "Optional[WeightSource[Request]]" = None,
    retry_after: float = 60,
) -> Callable[[Request], GateResult]:
    """A dependency gating the request: returns the :class:`GateResult` when allowed, raises a 429 otherwise."""
    options: GateOptions[Request] = GateOptions(
        "waitstate.middleware.fastapi.create_dependency", client, _read_header, tag_from, weight_from, retry_after
    )

    # `async def`: FastAPI runs a plain `def` dependency on its thread pool,
    # which costs more than the in-memory gate() itself.
    async def waitstate_gate(request: Request) -> GateResult:
        tag, result = options.gate(request)
        request.state.waitstate_tag = tag
        if not result.allowed:
            request.state.waitstate_denied = result
            raise WaitstateDenied(result, options.retry_after)
        return result

    return waitstate_gate  # type: ignore[return-value]


def create_response_hook(
    client: Any,
    *,
    tag_from: "Optional[TagSource[Request]]" = None,
    retry_after: float = 60,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """An ``app.middleware("http")`` function: reports latency on response and an error on 5xx,
    and answers the dependency's denials with the typed 429 body."""
    options: GateOptions[Request] = GateOptions(
        "waitstate.middleware.fastapi.create_response_hook", client, _read_header, tag_from, None, retry_after
    )

    async def waitstate_response_hook(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            report_completion(options.client, _tag(request, options), start, 500)
            raise
        denied: Optional[GateResult] = getattr(request.state, _STATE_DENIED, None)
        if denied is not None and response.status_code == 429:
            retry = response.headers.get("retry-after", options.retry_after)
            return Response(denial_body(denied.reason), 429, {"retry-after": retry}, media_type=JSON_CONTENT_TYPE)
        report_completion(options.client, _tag(request, options), start, response.status_code)
        return response

    return waitstate_response_hook


def _tag(request: Request, options: "GateOptions[Request]") -> Optional[str]:
    # The dependency's tag when it ran (its tag_from may differ from the hook's).
    state = request.state
    return getattr(state, _STATE_TAG) if hasattr(state, _STATE_TAG) else options.tag_of(request)
