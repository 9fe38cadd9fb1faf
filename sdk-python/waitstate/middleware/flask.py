"""Flask: ``init_app(app, client)`` gates every request and reports each response.

``tag_from`` / ``weight_from`` functions receive the ``flask.Request``;
``on_denied(request, result)`` may return a response of its own.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

from flask import Flask, Request, Response, g, request

from ._common import JSON_CONTENT_TYPE, GateOptions, TagSource, WeightSource, denial_body, report_completion

__all__ = ["init_app"]


def _read_header(req: Request, name: str) -> Optional[str]:
    return req.headers.get(name)


def init_app(
    app: Flask,
    client: Any,
    *,
    tag_from: "Optional[TagSource[Request]]" = None,
    weight_from: "Optional[WeightSource[Request]]" = None,
    retry_after: float = 60,
    on_denied: Optional[Callable[[Request, Any], Any]] = None,
) -> None:
    """Gates each request before its view (429 when denied); reports latency and 5xx after it."""
    options: GateOptions[Request] = GateOptions(
        "waitstate.middleware.flask.init_app", client, _read_header, tag_from, weight_from, retry_after, on_denied
    )

    def waitstate_gate() -> Any:
        tag, result = options.gate(request)  # type: ignore[arg-type]
        if not result.allowed:
            if options.on_denied is not None:
                return options.on_denied(request, result)  # type: ignore[arg-type]
            return Response(denial_body(result.reason), 429, {"Retry-After": options.retry_after}, content_type=JSON_CONTENT_TYPE)
        g._waitstate = (tag, time.perf_counter())
        return None

    def waitstate_report(response: Response) -> Response:
        started = g.pop("_waitstate", None)
        if started is not None:
            report_completion(options.client, started[0], started[1], response.status_code)
        return response

    # First in line: a denied request should cost no other before_request hook.
    app.before_request_funcs.setdefault(None, []).insert(0, waitstate_gate)
    app.after_request(waitstate_report)
