"""A plain WSGI middleware (Flask, Django's WSGI handler, Bottle, Falcon, …).

>>> app = WaitStateMiddleware(app, client)

``tag_from`` / ``weight_from`` functions receive the WSGI ``environ``;
``on_denied(environ, start_response, result)`` may answer a denial its own way
(it returns the body iterable, as a WSGI app does).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple

from ._common import JSON_CONTENT_TYPE, GateOptions, TagSource, WeightSource, denial_body, report_completion

__all__ = ["WaitStateMiddleware"]

Environ = dict
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def read_environ_header(environ: Environ, name: str) -> Optional[str]:
    """One header of a WSGI environ (``x-waitstate-tag`` is ``HTTP_X_WAITSTATE_TAG`` there)."""
    key = name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return environ.get(key)
    return environ.get("HTTP_" + key)


def denial_response(start_response: StartResponse, reason: str, retry_after: str) -> List[bytes]:
    body = denial_body(reason)
    start_response(
        "429 Too Many Requests",
        [("Content-Type", JSON_CONTENT_TYPE), ("Retry-After", retry_after), ("Content-Length", str(len(body)))],
    )
    return [body]


class WaitStateMiddleware:
    """Gates every request; reports latency when the response has been sent, and an error on 5xx."""

    def __init__(
        self,
        app: WSGIApp,
        client: Any,
        *,
        tag_from: "Optional[TagSource[Environ]]" = None,
        weight_from: "Optional[WeightSource[Environ]]" = None,
        retry_after: float = 60,
        on_denied: Optional[Callable[[Environ, StartResponse, Any], Iterable[bytes]]] = None,
    ) -> None:
        self.app = app
        self.options: GateOptions[Environ] = GateOptions(
            "waitstate.middleware.wsgi.WaitStateMiddleware", client, read_environ_header, tag_from, weight_from, retry_after, on_denied
        )

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        options = self.options
        tag, result = options.gate(environ)
        if not result.allowed:
            if options.on_denied is not None:
                return options.on_denied(environ, start_response, result)
            return denial_response(start_response, result.reason, options.retry_after)
        start = time.perf_counter()
        status = [500]

        def tracking_start_response(status_line: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                status[0] = int(status_line[:3])
            except ValueError:
                status[0] = 500
            if exc_info is not None:
                return start_response(status_line, headers, exc_info)
            return start_response(status_line, headers)

        try:
            body = self.app(environ, tracking_start_response)
        except BaseException:
            report_completion(options.client, tag, start, 500)
            raise
        return _Body(body, options.client, tag, start, status)


class _Body:
    """The app's body iterable; the request is reported once, when the server closes it (after the last byte)."""

    __slots__ = ("_body", "_client", "_tag", "_start", "_status", "_reported")

    def __init__(self, body: Iterable[bytes], client: Any, tag: Optional[str], start: float, status: List[int]) -> None:
        self._body = body
        self._client = client
        self._tag = tag
        self._start = start
        self._status = status
        self._reported = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except BaseException:
            self._status[0] = 500
            raise

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if not self._reported:
                self._reported = True
                report_completion(self._client, self._tag, self._start, self._status[0])
