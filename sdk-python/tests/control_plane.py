"""A stand-in control plane for the SDK's tests: a real HTTP server on 127.0.0.1
that speaks the wire protocol (signed token exchange, HMAC-verified pulses with
per-instance idempotency, JWT-scoped policy reads with ETags) and misbehaves on
command. The real control plane runs under wrangler dev in the end-to-end test;
this one exists to inject the faults the real one can't be told to have.
(The Node SDK's tests use the same server, written in TypeScript.)
"""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

FAULTS = ("none", "error500", "garbage", "bad_policy", "hang", "accept_then_drop")


class ReceivedPulse:
    def __init__(self, body: Dict[str, Any], counted: bool) -> None:
        self.body = body
        self.counted = counted
        self.received_at = time.time()


class ControlPlane:
    def __init__(self, pulse_interval: int = 100, lease_duration_seconds: int = 60, token_ttl_ms: int = 15 * 60_000) -> None:
        self.publish_key = f"pk_test_{uuid.uuid4().hex[:8]}"
        self.secret_key = f"sk_test_{uuid.uuid4()}"
        self.org_id = "org_test"
        self.pulses: List[ReceivedPulse] = []
        self.requests: List[str] = []
        self.tokens_issued: List[str] = []
        self.fault = "none"
        self.delay_ms = 0
        self.token_ttl_ms = token_ttl_ms
        self.policy: Dict[str, Any] = {
            "version": 1,
            "globalMaxWeight": None,
            "tagMaxWeights": {},
            "killSignal": False,
            "status": "ok",
            "pulseInterval": pulse_interval,
            "leaseDurationSeconds": lease_duration_seconds,
            "issuedAt": int(time.time() * 1000),
        }
        self._last_ts: Dict[str, int] = {}
        self._lock = threading.Condition()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._sockets: "set[socket.socket]" = set()
        self.port = 0

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    def start(self) -> "ControlPlane":
        plane = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with plane._lock:
                    plane._sockets.add(self.connection)

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with plane._lock:
                        plane._sockets.discard(self.connection)

            def do_GET(self) -> None:
                plane._handle(self)

            def do_POST(self) -> None:
                plane._handle(self)

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.allow_reuse_address = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops listening and drops every connection: clients now get connection refused."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            for sock in list(self._sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()

    def set_policy(self, **patch: Any) -> Dict[str, Any]:
        """Replaces fields of the policy (wire names); the version goes up by one."""
        with self._lock:
            self.policy = {**self.policy, **patch, "version": self.policy["version"] + 1, "issuedAt": int(time.time() * 1000)}
            return dict(self.policy)

    def counted_usage(self, instance_id: Optional[str] = None) -> int:
        with self._lock:
            return sum(p.body["usageDelta"] for p in self.pulses if p.counted and (instance_id is None or p.body["instanceId"] == instance_id))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self._lock.wait(min(left, 0.05))

    # ------------------------------------------------------------------ protocol

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length).decode() if length else ""
        path = h.path.split("?", 1)[0]
        with self._lock:
            self.requests.append(f"{h.command} {path}")
        try:
            if self.fault == "hang":
                # read and never answered while the fault lasts; then the connection is dropped
                while self.fault == "hang" and self._server is not None:
                    time.sleep(0.02)
                h.close_connection = True
                return
            if self.delay_ms:
                time.sleep(self.delay_ms / 1000)
            if self.fault == "error500":
                return _send(h, 500, {"error": {"code": "INTERNAL", "message": "injected failure"}})
            if self.fault == "garbage":
                return _send_raw(h, 200, b"<html>definitely not json")
            if h.command == "POST" and path == "/v1/auth/token":
                return self._token(h, raw)
            if h.command == "POST" and path == "/v1/pulse":
                return self._pulse(h, raw)
            if h.command == "GET" and path.startswith("/v1/policy/"):
                return self._policy_read(h, path[len("/v1/policy/") :])
            _send(h, 404, {"error": {"code": "NOT_FOUND", "message": "no route"}})
        finally:
            with self._lock:
                self._lock.notify_all()

    def _signed(self, h: BaseHTTPRequestHandler, message: str) -> Optional[str]:
        timestamp = h.headers.get("x-waitstate-timestamp")
        signature = h.headers.get("x-waitstate-signature")
        if h.headers.get("x-waitstate-id") != self.publish_key or timestamp is None or signature is None:
            return "INVALID_SIGNATURE"
        if abs(time.time() * 1000 - float(timestamp)) > 5 * 60_000:
            return "TIMESTAMP_SKEW"
        expected = hmac.new(self.secret_key.encode(), f"{message}.{timestamp}".encode(), hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected, signature) else "INVALID_SIGNATURE"

    def _token(self, h: BaseHTTPRequestHandler, raw: str) -> None:
        if self.secret_key in raw:
            return _send(h, 401, {"error": {"code": "UNSIGNED_TOKEN_EXCHANGE", "message": "the secret key was sent"}})
        problem = self._signed(h, f"POST\n/v1/auth/token\n{raw}")
        if problem:
            return _send(h, 401, {"error": {"code": problem, "message": "bad signature"}})
        token = f"jwt_{uuid.uuid4()}"
        with self._lock:
            self.tokens_issued.append(token)
        _send(h, 200, {"token": token, "expiresAt": int(time.time() * 1000) + self.token_ttl_ms, "orgId": self.org_id})

    def _pulse(self, h: BaseHTTPRequestHandler, raw: str) -> None:
        problem = self._signed(h, raw)
        if problem:
            return _send(h, 401, {"error": {"code": problem, "message": "bad signature"}})
        if len(raw.encode()) > 64 * 1024:
            return _send(h, 413, {"error": {"code": "PAYLOAD_TOO_LARGE", "message": "over 64 KiB"}})
        try:
            body = json.loads(raw)
        except ValueError:
            return _send(h, 400, {"error": {"code": "INVALID_JSON", "message": "bad json"}})
        invalid = _check_pulse(body)
        if invalid:
            return _send(h, 400, {"error": {"code": "INVALID_PULSE", "message": invalid}})
        with self._lock:
            last = self._last_ts.get(body["instanceId"])
            counted = last is None or body["ts"] > last
            if counted:
                self._last_ts[body["instanceId"]] = body["ts"]
            self.pulses.append(ReceivedPulse(body, counted))
            policy = dict(self.policy)
        if self.fault == "accept_then_drop":
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        headers = {"x-waitstate-counted": "true" if counted else "false"}
        if self.fault == "bad_policy":
            return _send(h, 200, {**policy, "globalMaxWeight": "lots", "pulseInterval": -5}, headers)
        headers["etag"] = f'"{policy["version"]}"'
        _send(h, 200, policy, headers)

    def _policy_read(self, h: BaseHTTPRequestHandler, org_id: str) -> None:
        auth = h.headers.get("authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if token not in self.tokens_issued:
            return _send(h, 401, {"error": {"code": "UNAUTHORIZED", "message": "bad token"}})
        if org_id != self.org_id:
            return _send(h, 403, {"error": {"code": "FORBIDDEN", "message": "other org"}})
        policy = dict(self.policy)
        if self.fault == "bad_policy":
            return _send(h, 200, {**policy, "status": "maybe"})
        etag = f'"{policy["version"]}"'
        if h.headers.get("if-none-match") == etag:
            h.send_response(304)
            h.send_header("etag", etag)
            h.send_header("content-length", "0")
            h.end_headers()
            return
        _send(h, 200, policy, {"etag": etag})


def _check_pulse(body: Any) -> Optional[str]:
    if not isinstance(body, dict):
        return "not an object"
    if not isinstance(body.get("instanceId"), str) or not body["instanceId"]:
        return "instanceId"
    for field in ("usageDelta", "bouncedUnits", "ts"):
        v = body.get(field)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            return field
    if body["bouncedUnits"] > body["usageDelta"]:
        return "bouncedUnits cannot exceed usageDelta"
    if not isinstance(body.get("metrics"), dict):
        return "metrics"
    if "tagMetrics" in body and not isinstance(body["tagMetrics"], list):
        return "tagMetrics"
    return None


def _send(h: BaseHTTPRequestHandler, status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> None:
    _send_raw(h, status, json.dumps(body).encode(), headers)


def _send_raw(h: BaseHTTPRequestHandler, status: int, data: bytes, headers: Optional[Dict[str, str]] = None) -> None:
    h.send_response(status)
    h.send_header("content-type", "application/json")
    h.send_header("content-length", str(len(data)))
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(data)
