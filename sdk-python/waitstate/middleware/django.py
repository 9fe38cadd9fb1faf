"""Django: ``"waitstate.middleware.django.WaitStateMiddleware"`` in ``MIDDLEWARE``.

It reads the client from ``settings.WAITSTATE_CLIENT`` and, optionally, the
options from ``settings.WAITSTATE_MIDDLEWARE`` (``{"tag_from": …,
"weight_from": …, "retry_after": …, "on_denied": …}``; functions receive the
``HttpRequest``). Put it first in ``MIDDLEWARE`` so denied requests cost
nothing else.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .._errors import WaitstateError
from ._common import JSON_CONTENT_TYPE, GateOptions, denial_body, report_completion

__all__ = ["WaitStateMiddleware"]

_WHERE = "waitstate.middleware.django.WaitStateMiddleware"
_OPTION_NAMES = ("tag_from", "weight_from", "retry_after", "on_denied")


def _read_header(request: HttpRequest, name: str) -> Optional[str]:
    return request.headers.get(name)


class WaitStateMiddleware:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        client = getattr(settings, "WAITSTATE_CLIENT", None)
        if client is None:
            raise WaitstateError(
                "INVALID_OPTIONS",
                f"{_WHERE}: settings.WAITSTATE_CLIENT is not set; create the WaitstateClient in settings.py",
                field="WAITSTATE_CLIENT",
            )
        extra = getattr(settings, "WAITSTATE_MIDDLEWARE", None) or {}
        if not isinstance(extra, dict) or any(key not in _OPTION_NAMES for key in extra):
            raise WaitstateError(
                "INVALID_OPTIONS",
                f"{_WHERE}: settings.WAITSTATE_MIDDLEWARE must be a dict of {', '.join(_OPTION_NAMES)}, got {extra!r}",
                field="WAITSTATE_MIDDLEWARE",
            )
        self.options: GateOptions[HttpRequest] = GateOptions(_WHERE, client, _read_header, **extra)

    def __call__(self, request: HttpRequest) -> Any:
        options = self.options
        tag, result = options.gate(request)
        if not result.allowed:
            if options.on_denied is not None:
                return options.on_denied(request, result)
            response = HttpResponse(denial_body(result.reason), status=429, content_type=JSON_CONTENT_TYPE)
            response["Retry-After"] = options.retry_after
            return response
        start = time.perf_counter()
        try:
            response = self.get_response(request)
        except BaseException:
            report_completion(options.client, tag, start, 500)
            raise
        report_completion(options.client, tag, start, response.status_code)
        return response
