"""WaitstateConfig: the options of every WaitState SDK, in Python style, checked at construction."""
from __future__ import annotations

import dataclasses
import math
import os
import re
import uuid
from typing import Callable, Optional
from urllib.parse import urlsplit

from ._errors import WaitstateError

__all__ = ["WaitstateConfig", "BASE_URL_ENV", "SAFE_MODE_STRATEGIES"]

BASE_URL_ENV = "WAITSTATE_BASE_URL"
SAFE_MODE_STRATEGIES = ("open", "fixed_rps", "last_policy")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*\Z")
_MAX_ID_LENGTH = 128
_MAX_KEY_LENGTH = 200


def _invalid(field: str, message: str) -> WaitstateError:
    return WaitstateError("INVALID_OPTIONS", f"WaitstateConfig: {field} {message}", field=field)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _http_url(field: str, value: object, source: str) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid(field, f"must be an http(s) URL such as http://127.0.0.1:8787, got {value!r}{source}")
    try:
        parts.port  # noqa: B018 -- a port that is not a number raises here, not on the first pulse
    except ValueError:
        raise _invalid(field, f"has a port that is not a number: {value!r}{source}") from None
    return value.rstrip("/")  # type: ignore[union-attr]


@dataclasses.dataclass(frozen=True)
class WaitstateConfig:
    """Options of a :class:`WaitstateClient`. Bad values raise :class:`WaitstateError`
    (``code="INVALID_OPTIONS"``, ``field`` naming the option) here, at construction.

    ``base_url`` defaults to the ``WAITSTATE_BASE_URL`` environment variable; there
    is no hosted default to send your keys to. With ``agent_url`` the client talks
    to a local agent (sidecar) instead, and the keys may be empty.
    """

    publish_key: str
    """Identifies your organization (``x-waitstate-id``). Required unless ``agent_url`` is set."""
    secret_key: str
    """Signs pulses and the key exchange; never sent. Required unless ``agent_url`` is set."""
    base_url: Optional[str] = None
    """Your control plane, e.g. ``http://127.0.0.1:8787``; default ``$WAITSTATE_BASE_URL``."""
    site_id: Optional[str] = None
    """Shard key: one aggregator, policy and health per site (default: the organization's id, server side)."""
    instance_id: Optional[str] = None
    """This process in telemetry; the key of pulse idempotency, so unique per process (default: a random UUID)."""
    pulse_interval_ms: int = 5000
    """ms between pulses until the first policy names its own (100-3 600 000)."""
    safe_mode_strategy: str = "open"
    """What gate() does once the lease has expired: ``open``, ``fixed_rps`` or ``last_policy``."""
    safe_mode_max_rps: float = 50
    """Calls per second per instance in ``fixed_rps`` safe mode."""
    request_timeout_ms: int = 10000
    """Deadline of each request to the control plane (or the agent), ms (50-120 000)."""
    on_error: Optional[Callable[[WaitstateError], None]] = None
    """Receives every background failure (default: a warning on stderr, at most once a minute per code).
    It is called from the SDK's own thread; an exception it raises is ignored."""
    push: bool = True
    """Receive policy changes over the control plane's push socket as they happen (a kill switch in
    milliseconds); pulses and policy reads continue either way. Ignored in agent mode."""
    agent_url: Optional[str] = None
    """A local WaitState agent, e.g. ``http://localhost:9000``: gate and report through it instead of in-process."""

    def __post_init__(self) -> None:
        agent = self.agent_url is not None
        if agent:
            object.__setattr__(self, "agent_url", _http_url("agent_url", self.agent_url, ""))
        for name in ("publish_key", "secret_key"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise _invalid(name, f"must be a string, got {type(value).__name__}")
            if not agent and value.strip() == "":
                raise _invalid(name, "is required (a non-empty string; read it from an environment variable)")
            if len(value) > _MAX_KEY_LENGTH:
                raise _invalid(name, f"is longer than {_MAX_KEY_LENGTH} characters")
        if not agent:
            if self.base_url is None:
                env = os.environ.get(BASE_URL_ENV, "").strip()
                if env == "":
                    raise _invalid(
                        "base_url",
                        f"is required: pass your control plane's URL (e.g. base_url=\"http://127.0.0.1:8787\") or set {BASE_URL_ENV}",
                    )
                object.__setattr__(self, "base_url", _http_url("base_url", env, f" (from {BASE_URL_ENV})"))
            else:
                object.__setattr__(self, "base_url", _http_url("base_url", self.base_url, ""))
        elif self.base_url is not None:
            object.__setattr__(self, "base_url", _http_url("base_url", self.base_url, ""))
        for name in ("site_id", "instance_id"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str) or len(value) > _MAX_ID_LENGTH or not _ID.match(value):
                raise _invalid(
                    name,
                    f"must be 1-{_MAX_ID_LENGTH} letters, digits, '.', '_', ':' or '-', starting with a letter or digit, got {value!r}",
                )
        if self.instance_id is None:
            object.__setattr__(self, "instance_id", str(uuid.uuid4()))
        for name, low, high in (("pulse_interval_ms", 100, 3_600_000), ("request_timeout_ms", 50, 120_000)):
            value = getattr(self, name)
            if not (_is_number(value) and float(value).is_integer() and low <= value <= high):
                raise _invalid(name, f"must be a whole number of ms between {low} and {high}, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.safe_mode_strategy not in SAFE_MODE_STRATEGIES:
            raise _invalid("safe_mode_strategy", f"must be one of {', '.join(SAFE_MODE_STRATEGIES)}, got {self.safe_mode_strategy!r}")
        rps = self.safe_mode_max_rps
        if not (_is_number(rps) and math.isfinite(rps) and rps >= 0):
            raise _invalid("safe_mode_max_rps", f"must be a finite number >= 0, got {rps!r}")
        if not isinstance(self.push, bool):
            raise _invalid("push", f"must be True or False, got {self.push!r}")
        if self.on_error is not None and not callable(self.on_error):
            raise _invalid("on_error", f"must be a function (error: WaitstateError) -> None, got {type(self.on_error).__name__}")

    def __repr__(self) -> str:
        # The secret never reaches a log line through repr().
        return (
            f"WaitstateConfig(publish_key={self.publish_key!r}, secret_key='***', base_url={self.base_url!r}, "
            f"site_id={self.site_id!r}, instance_id={self.instance_id!r}, agent_url={self.agent_url!r})"
        )
