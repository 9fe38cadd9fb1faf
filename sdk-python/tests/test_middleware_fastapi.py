"""FastAPI through its real test client (Starlette's, over httpx)."""
from __future__ import annotations

from typing import Any, Mapping, Tuple

import pytest
from control_plane import ControlPlane
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from middleware_checks import check_denials, check_reports

from waitstate import GateResult, WaitstateClient, WaitstateError
from waitstate.middleware.fastapi import create_dependency, create_response_hook


def make_app(client: WaitstateClient, **options: Any) -> FastAPI:
    app = FastAPI()
    gate = create_dependency(client, **options)
    app.middleware("http")(create_response_hook(client))

    @app.get("/search")
    async def search(request: Request, decision: GateResult = Depends(gate)) -> Any:
        return {"results": [], "reason": decision.reason}

    @app.get("/boom")
    async def boom(_: GateResult = Depends(gate)) -> Any:
        raise RuntimeError("backend down")

    @app.get("/ungated")
    async def ungated() -> Any:
        return {"ok": True}

    return app


def caller(app: FastAPI):
    http = TestClient(app, raise_server_exceptions=False)

    def call(path: str, headers: Mapping[str, str]) -> Tuple[int, Mapping[str, str], bytes]:
        r = http.get(path, headers=dict(headers))
        return r.status_code, r.headers, r.content

    return call


def test_denies_with_429_and_the_typed_body(blocking_client: WaitstateClient) -> None:
    check_denials(caller(make_app(blocking_client)))


def test_reports_latency_and_5xx(blocking_client: WaitstateClient, cp: ControlPlane) -> None:
    check_reports(caller(make_app(blocking_client)), blocking_client, cp)


def test_weight_and_tag_sources_are_overridable(blocking_client: WaitstateClient) -> None:
    call = caller(make_app(blocking_client, weight_from="x-waitstate-weight", retry_after=2.5))
    status, headers, _ = call("/search", {"x-waitstate-tag": "pro", "x-waitstate-weight": "9"})
    assert (status, headers["retry-after"]) == (429, "3")
    assert call("/search", {"x-waitstate-tag": "pro", "x-waitstate-weight": "abc"})[0] == 200  # not a number: weight 1
    by_path = caller(make_app(blocking_client, tag_from=lambda req: "free" if req.url.path == "/search" else None))
    assert by_path("/search", {})[0] == 429
    broken = caller(make_app(blocking_client, tag_from=lambda req: 1 / 0))
    assert broken("/search", {"x-waitstate-tag": "free"})[0] == 200  # a tag function that raises means no tag


def test_the_dependency_alone_still_answers_429_with_retry_after(blocking_client: WaitstateClient) -> None:
    app = FastAPI()
    gate = create_dependency(blocking_client)

    @app.get("/search")
    async def search(_: Any = Depends(gate)) -> Any:
        return {}

    r = TestClient(app).get("/search", headers={"x-waitstate-tag": "free"})
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert r.json()["detail"]["code"] == "RATE_LIMITED"


def test_bad_options_raise_at_creation(blocking_client: WaitstateClient) -> None:
    with pytest.raises(WaitstateError) as caught:
        create_dependency(blocking_client, retry_after=-1)
    assert caught.value.field == "retry_after"
    with pytest.raises(WaitstateError) as not_a_client:
        create_response_hook(object())
    assert not_a_client.value.field == "client"
