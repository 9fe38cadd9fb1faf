"""The plain ASGI middleware (under Starlette's test client) and WSGI middleware (under werkzeug's)."""
from __future__ import annotations

import json
from typing import Any, Mapping, Tuple

from control_plane import ControlPlane
from middleware_checks import check_denials, check_reports
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.test import Client as WerkzeugClient

from waitstate import WaitstateClient
from waitstate.middleware.asgi import WaitStateMiddleware as ASGIMiddleware
from waitstate.middleware.wsgi import WaitStateMiddleware as WSGIMiddleware


def asgi_app(client: WaitstateClient) -> Any:
    async def search(request: Any) -> Any:
        return JSONResponse({"results": []})

    async def boom(request: Any) -> Any:
        raise RuntimeError("backend down")

    return ASGIMiddleware(Starlette(routes=[Route("/search", search), Route("/boom", boom)]), client)


def wsgi_app(environ: dict, start_response: Any) -> Any:
    if environ["PATH_INFO"] == "/boom":
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"down"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"results": []}).encode()]


def asgi_caller(client: WaitstateClient):
    http = TestClient(asgi_app(client), raise_server_exceptions=False)

    def call(path: str, headers: Mapping[str, str]) -> Tuple[int, Mapping[str, str], bytes]:
        r = http.get(path, headers=dict(headers))
        return r.status_code, r.headers, r.content

    return call


def wsgi_caller(client: WaitstateClient):
    http = WerkzeugClient(WSGIMiddleware(wsgi_app, client))

    def call(path: str, headers: Mapping[str, str]) -> Tuple[int, Mapping[str, str], bytes]:
        r = http.get(path, headers=dict(headers))
        data = r.get_data()
        r.close()
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, data

    return call


def test_asgi_denies_with_429_and_the_typed_body(blocking_client: WaitstateClient) -> None:
    check_denials(asgi_caller(blocking_client))


def test_asgi_reports_latency_and_5xx(blocking_client: WaitstateClient, cp: ControlPlane) -> None:
    check_reports(asgi_caller(blocking_client), blocking_client, cp)


def test_wsgi_denies_with_429_and_the_typed_body(blocking_client: WaitstateClient) -> None:
    check_denials(wsgi_caller(blocking_client))


def test_wsgi_reports_latency_and_5xx(blocking_client: WaitstateClient, cp: ControlPlane) -> None:
    check_reports(wsgi_caller(blocking_client), blocking_client, cp)


def test_other_asgi_scopes_pass_through(blocking_client: WaitstateClient) -> None:
    with TestClient(asgi_app(blocking_client)) as http:  # lifespan runs through the middleware untouched
        assert http.get("/search", headers={"x-waitstate-tag": "free"}).status_code == 429
