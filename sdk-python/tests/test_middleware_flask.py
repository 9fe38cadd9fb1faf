"""Flask through its real test client (werkzeug)."""
from __future__ import annotations

from typing import Any, Mapping, Tuple

from control_plane import ControlPlane
from flask import Flask
from middleware_checks import check_denials, check_reports

from waitstate import WaitstateClient
from waitstate.middleware.flask import init_app


def make_app(client: WaitstateClient, **options: Any) -> Flask:
    app = Flask(__name__)
    init_app(app, client, **options)

    @app.route("/search")
    def search() -> Any:
        return {"results": []}

    @app.route("/boom")
    def boom() -> Any:
        raise RuntimeError("backend down")

    return app


def caller(app: Flask):
    http = app.test_client()

    def call(path: str, headers: Mapping[str, str]) -> Tuple[int, Mapping[str, str], bytes]:
        r = http.get(path, headers=dict(headers))
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.data

    return call


def test_denies_with_429_and_the_typed_body(blocking_client: WaitstateClient) -> None:
    check_denials(caller(make_app(blocking_client)))


def test_reports_latency_and_5xx(blocking_client: WaitstateClient, cp: ControlPlane) -> None:
    check_reports(caller(make_app(blocking_client)), blocking_client, cp)


def test_on_denied_answers_its_own_way(blocking_client: WaitstateClient) -> None:
    call = caller(make_app(blocking_client, on_denied=lambda request, result: (f"busy: {result.reason}", 503)))
    status, _, body = call("/search", {"x-waitstate-tag": "free"})
    assert (status, body) == (503, b"busy: tag_blocked")
