"""Django through its real test client, with the client in settings.WAITSTATE_CLIENT."""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Tuple

import django
import pytest
from control_plane import ControlPlane
from django.conf import settings
from middleware_checks import check_denials, check_reports

from waitstate import WaitstateClient, WaitstateError

urlpatterns: list = []


def _views() -> None:
    from django.http import JsonResponse
    from django.urls import path

    def search(request: Any) -> Any:
        return JsonResponse({"results": []})

    def boom(request: Any) -> Any:
        raise RuntimeError("backend down")

    urlpatterns[:] = [path("search", search), path("boom", boom)]


if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["waitstate.middleware.django.WaitStateMiddleware"],
        SECRET_KEY="test",
        INSTALLED_APPS=[],
    )
    django.setup()
_views()


@pytest.fixture
def django_client(blocking_client: WaitstateClient) -> Iterator[Any]:
    from django.test import Client

    settings.WAITSTATE_CLIENT = blocking_client
    try:
        yield Client(raise_request_exception=False)
    finally:
        del settings.WAITSTATE_CLIENT


def caller(http: Any):
    def call(path: str, headers: Mapping[str, str]) -> Tuple[int, Mapping[str, str], bytes]:
        meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        r = http.get(path, **meta)
        return r.status_code, {k.lower(): v for k, v in r.items()}, r.content

    return call


def test_denies_with_429_and_the_typed_body(django_client: Any) -> None:
    check_denials(caller(django_client))


def test_reports_latency_and_5xx(django_client: Any, blocking_client: WaitstateClient, cp: ControlPlane) -> None:
    check_reports(caller(django_client), blocking_client, cp)


def test_a_missing_client_setting_is_named() -> None:
    from waitstate.middleware.django import WaitStateMiddleware

    with pytest.raises(WaitstateError) as caught:
        WaitStateMiddleware(lambda request: None)
    assert caught.value.field == "WAITSTATE_CLIENT"
