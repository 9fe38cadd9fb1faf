"""A plain ASGI middleware (Starlette, FastAPI, Quart, Django's ASGI handler, …).

>>> app = WaitStateMiddleware(app, client)

``tag_from`` / ``weight_from`` functions receive the ASGI ``scope``;
``on_denied(scope, result)`` may return ``(status, headers, body)`` to answer
a denial its own way.
"""
from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, Dict, List, MutableMapping, Optional, Tuple

from ._common import JSON_CONTENT_TYPE, GateOptions, TagSource, WeightSource, denial_body, report_completion

__all__ = ["WaitStateMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
DeniedHandler = Callable[[Scope, Any], Tuple[int, List[Tuple[bytes, bytes]], bytes]]


def read_scope_header(scope: Scope, name: str) -> Optional[str]:
    """One header of an ASGI scope (names are lower case there); a repeated header gives its first value."""
    key = name.encode("latin-1")
    for header, value in scope.get("headers") or ():
        if header == key:
            return value.decode("latin-1")
    return None


async def send_denial(send: Send, reason: str, retry_after: str) -> None:
    body = denial_body(reason)
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", JSON_CONTENT_TYPE.encode()),
                (b"retry-after", retry_after.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class WaitStateMiddleware:
    """Gates every HTTP request; other scopes (websocket, lifespan) pass through."""

    def __init__(
        self,
        app: ASGIApp,
        client: Any,
        *,
        tag_from: "Optional[TagSource[Scope]]" = None,
        weight_from: "Optional[WeightSource[Scope]]" = None,
        retry_after: float = 60,
        on_denied: Optional[DeniedHandler] = None,
    ) -> None:
        self.app = app
        self.options: GateOptions[Scope] = GateOptions(
            "waitstate.middleware.asgi.WaitStateMiddleware", client, read_scope_header, tag_from, weight_from, retry_after, on_denied
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        options = self.options
        tag, result = options.gate(scope)
        if not result.allowed:
            if options.on_denied is not None:
                status, headers, body = options.on_denied(scope, result)
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            else:
                await send_denial(send, result.reason, options.retry_after)
            return
        start = time.perf_counter()
        state: Dict[str, Any] = {"status": 500, "done": False}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False) and not state["done"]:
                state["done"] = True
                report_completion(options.client, tag, start, state["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except BaseException:
            if not state["done"]:
                state["done"] = True
                report_completion(options.client, tag, start, 500)
            raise
        if not state["done"]:
            state["done"] = True
            report_completion(options.client, tag, start, state["status"])
