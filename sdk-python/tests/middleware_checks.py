"""What every integration must do, checked the same way for each framework's real test client."""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, Mapping, Tuple

from conftest import eventually
from control_plane import ControlPlane

from waitstate import WaitstateClient

# (status, headers, body bytes) of one request: each framework's test adapts its client to this.
Call = Callable[..., Tuple[int, Mapping[str, str], bytes]]

EXPECTED_BODY = {
    "error": {
        "code": "RATE_LIMITED",
        "message": "Too many requests: traffic for this tag is blocked by policy (reason: tag_blocked).",
        "reason": "tag_blocked",
    }
}


def check_denials(call: Call) -> None:
    status, headers, body = call("/search", {"x-waitstate-tag": "free"})
    assert status == 429
    assert headers["retry-after"] == "60"
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == EXPECTED_BODY
    # over the global limit (5) by weight only when a weight header is configured: default weight is 1
    assert call("/search", {"x-waitstate-tag": "pro", "x-waitstate-weight": "9"})[0] == 200
    assert call("/search", {"x-waitstate-tag": "pro"})[0] == 200
    assert call("/search", {})[0] == 200


def tag_metrics(cp: ControlPlane, tag: str) -> Dict[str, Any]:
    """The latest counted pulse's entry for `tag` (waiting for it)."""

    def find() -> Any:
        for p in reversed(cp.pulses):
            for m in p.body.get("tagMetrics", []):
                if m["tag"] == tag and m.get("latencyHistogram", {}).get("n", 0) > 0:
                    return m
        return None

    return eventually(find, 5, f"a pulse with latency for {tag}")


def check_reports(call: Call, client: WaitstateClient, cp: ControlPlane, tag: str = "reports") -> None:
    """Latency on every response, an error on 5xx, for the request's tag."""
    before = time.time()
    assert call("/search", {"x-waitstate-tag": tag})[0] == 200
    assert call("/boom", {"x-waitstate-tag": tag})[0] == 500
    client_errors: Dict[str, int] = {}

    def both_reported() -> bool:
        n = 0
        errors = 0
        for p in cp.pulses:
            if p.received_at < before:
                continue
            for m in p.body.get("tagMetrics", []):
                if m["tag"] == tag:
                    n += m.get("latencyHistogram", {}).get("n", 0)
                    errors += m.get("errors", 0)
        client_errors["n"], client_errors["errors"] = n, errors
        return n >= 2 and errors >= 1

    eventually(both_reported, 5, f"latency x2 and one error for {tag}")
    assert client_errors == {"n": 2, "errors": 1}
