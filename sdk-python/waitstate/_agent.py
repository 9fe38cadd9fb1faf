"""Agent mode: gate and report through a local WaitState agent over HTTP.

The agent's contract (``POST /gate``, ``/report-latency``, ``/report-error``,
``/report-metric``, ``GET /health``) is that of the Node and Rust agents.
gate() is a blocking localhost round trip on a keep-alive connection per
thread; reports are queued and sent by one background thread, so recording
telemetry never waits on the network. Nothing raises: an agent that cannot be
reached means gate() allows (fail open) and ``AGENT_UNREACHABLE`` goes to
on_error; reports wait (bounded) until it answers again.
"""
from __future__ import annotations

import collections
import http.client
import json
import math
import threading
import time
from typing import Any, Deque, Dict, Optional, Tuple
from urllib.parse import urlsplit

from ._errors import WaitstateError
from ._names import is_valid_custom_metric_name
from ._report import Reporter
from ._result import RESULTS, GateResult, result_of

__all__ = ["AgentEngine"]

_ALLOWED = RESULTS[1]
# Reports held while the agent cannot be reached; past this the oldest are dropped (and said so).
MAX_QUEUED_REPORTS = 10_000
_JSON = {"content-type": "application/json"}


class AgentEngine:
    def __init__(self, agent_url: str, timeout_ms: int, instance_id: str, report: Reporter) -> None:
        parts = urlsplit(agent_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout_ms / 1000
        self._report = report
        self.instance_id = instance_id
        self._local = threading.local()
        self._queue: Deque[Tuple[str, Dict[str, Any]]] = collections.deque()
        self._cv = threading.Condition()
        self._stopped = False
        self._dropped = 0
        self._unreachable_since: Optional[float] = None
        self._sender = threading.Thread(target=self._send_loop, name="waitstate-agent-reports", daemon=True)
        self._sender.start()

    # ------------------------------------------------------------------ HTTP

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def _request(self, method: str, path: str, body: Optional[Dict[str, Any]]) -> Tuple[int, bytes]:
        """One request on this thread's keep-alive connection; a connection the agent closed is reopened once."""
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, self._prefix + path, body=payload, headers=_JSON if payload is not None else {})
                response = conn.getresponse()
                data = response.read()
                if response.will_close:
                    conn.close()
                return response.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if attempt == 1:
                    raise
            except Exception:
                conn.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, what: str, error: BaseException) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
        self._report(
            WaitstateError(
                "AGENT_UNREACHABLE",
                f"{what}: the agent at {self._host}:{self._port} did not answer ({type(error).__name__}: {error}); "
                "gate() fails open until it does",
            )
        )

    # ------------------------------------------------------------------ API

    def gate(self, tag: str = "__default__", weight: float = 1) -> GateResult:
        body: Dict[str, Any] = {}
        if isinstance(tag, str) and tag != "":
            body["tag"] = tag
        if isinstance(weight, (int, float)) and not isinstance(weight, bool):
            w = float(weight)
            # The agent takes a finite weight >= 0; the gate's own rules map the rest (NaN -> 1, negative -> 0).
            if math.isnan(w):
                w = 1.0
            elif w < 0:
                w = 0.0
            if math.isinf(w):
                w = 1.7976931348623157e308
            body["weight"] = w
        try:
            status, data = self._request("POST", "/gate", body)
        except Exception as error:  # noqa: BLE001 -- gate() never raises
            self._unreachable("POST /gate", error)
            return _ALLOWED
        self._unreachable_since = None
        if status != 200:
            self._report(WaitstateError("AGENT_FAILED", f"POST /gate answered {status}: {data[:200]!r}", status))
            return _ALLOWED
        try:
            answer = json.loads(data)
            return result_of(bool(answer["allowed"]), str(answer["reason"]))
        except Exception:  # noqa: BLE001
            self._report(WaitstateError("AGENT_FAILED", f"POST /gate answered 200 with {data[:200]!r}", status))
            return _ALLOWED

    def report_latency(self, ms: float, tag: Optional[str] = None) -> None:
        if not (isinstance(ms, (int, float)) and not isinstance(ms, bool) and math.isfinite(ms) and ms >= 0):
            self._report(WaitstateError("INVALID_VALUE", f"report_latency: ms must be a finite number >= 0, got {ms!r}; dropped"))
            return
        self._enqueue("/report-latency", {"ms": float(ms), **({"tag": tag} if tag else {})})

    def report_error(self, tag: Optional[str] = None) -> None:
        self._enqueue("/report-error", {"tag": tag} if tag else {})

    def report(self, metric: str, value: float, tag: Optional[str] = None) -> None:
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
            self._report(WaitstateError("INVALID_VALUE", f"report: value must be a finite number, got {value!r}; dropped"))
            return
        if not is_valid_custom_metric_name(metric):
            self._report(WaitstateError("INVALID_METRIC_NAME", f"report: {metric!r} is not a valid custom metric name; dropped"))
            return
        self._enqueue("/report-metric", {"metric": metric, "value": float(value), **({"tag": tag} if tag else {})})

    def status(self) -> Dict[str, Any]:
        health: Dict[str, Any] = {}
        try:
            status, data = self._request("GET", "/health", None)
            if status == 200:
                health = json.loads(data)
        except Exception as error:  # noqa: BLE001
            self._unreachable("GET /health", error)
        with self._cv:
            pending = len(self._queue)
        return {
            "mode": "agent",
            "instance_id": health.get("instanceId", self.instance_id),
            "synced": bool(health.get("synced", False)),
            "policy_version": health.get("policyVersion"),
            "safe_mode": bool(health.get("safeMode", False)),
            "agent_reachable": bool(health),
            "pending_reports": pending,
            "shut_down": self._stopped,
        }

    def shutdown(self, timeout: float = 10.0) -> None:
        """Sends the queued reports (within ``timeout`` s), then stops the sender."""
        with self._cv:
            if self._stopped:
                return
            self._stopped = True
            self._cv.notify_all()
        self._sender.join(timeout)
        with self._cv:
            left = len(self._queue)
        if left:
            self._report(WaitstateError("SHUTDOWN_FLUSH_FAILED", f"{left} report(s) could not be delivered to the agent"))

    # ------------------------------------------------------------------ the report queue

    def _enqueue(self, path: str, body: Dict[str, Any]) -> None:
        with self._cv:
            if self._stopped:
                return
            if len(self._queue) >= MAX_QUEUED_REPORTS:
                self._queue.popleft()
                self._dropped += 1
            self._queue.append((path, body))
            self._cv.notify()

    def _send_loop(self) -> None:
        failures = 0
        while True:
            with self._cv:
                while not self._queue and not self._stopped:
                    self._cv.wait()
                if not self._queue:
                    return
                path, body = self._queue[0]
                dropped, self._dropped = self._dropped, 0
            if dropped:
                self._report(WaitstateError("REPORTS_DROPPED", f"{dropped} report(s) dropped: the agent was unreachable for too long"))
            try:
                status, data = self._request("POST", path, body)
            except Exception as error:  # noqa: BLE001
                failures += 1
                if failures == 1:
                    self._unreachable(f"POST {path}", error)
                if self._stopped and failures >= 3:
                    return  # shutting down: give up after a few tries; shutdown() reports what is left
                with self._cv:
                    self._cv.wait(min(1.0, 0.05 * 2 ** min(failures, 5)))
                continue
            failures = 0
            with self._cv:
                if self._queue and self._queue[0][1] is body:
                    self._queue.popleft()
            if status >= 300:
                self._report(WaitstateError("AGENT_FAILED", f"POST {path} answered {status}: {data[:200]!r}", status))
