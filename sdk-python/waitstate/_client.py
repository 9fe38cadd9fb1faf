"""WaitstateClient: the in-process engine (the Rust crate, bound with PyO3) or a local agent."""
from __future__ import annotations

import atexit
import threading
import time
import weakref
from types import TracebackType
from typing import Any, Dict, Optional, Type

from ._config import WaitstateConfig
from ._errors import WaitstateError
from ._report import safe_reporter
from ._result import RESULTS, GateResult

__all__ = ["WaitstateClient", "Timer"]

_live: "weakref.WeakSet[WaitstateClient]" = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    # The final pulse: what was counted since the last one is delivered even
    # when the application never called shutdown().
    for client in list(_live):
        client.shutdown()


class Timer:
    """Reports the elapsed time as latency when stopped; usable as a context manager.

    >>> with client.timer("search"):
    ...     run_search()
    """

    __slots__ = ("_client", "_tag", "_start", "_stopped")

    def __init__(self, client: "WaitstateClient", tag: Optional[str]) -> None:
        self._client = client
        self._tag = tag
        self._start = time.perf_counter()
        self._stopped = False

    def stop(self) -> float:
        """Reports and returns the elapsed ms; a second call reports nothing and returns 0."""
        if self._stopped:
            return 0.0
        self._stopped = True
        ms = (time.perf_counter() - self._start) * 1000
        self._client.report_latency(ms, self._tag)
        return ms

    __call__ = stop

    def __enter__(self) -> "Timer":
        self._start = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.stop()
        if exc_type is not None and not issubclass(exc_type, (GeneratorExit, KeyboardInterrupt)):
            self._client.report_error(self._tag)


class WaitstateClient:
    """WaitState for Python.

    >>> client = WaitstateClient(WaitstateConfig(publish_key=..., secret_key=..., base_url=...))
    >>> if client.gate("search", 1).allowed: ...

    Construction returns at once: the engine (a tokio runtime owned by the
    native extension) exchanges the keys, pulses and reads the policy in its
    own threads. ``gate()`` answers in memory, never raises and never does I/O
    (in agent mode it asks the agent on localhost). Only a bad config raises
    (:class:`WaitstateError`, ``INVALID_OPTIONS``). One client per process;
    call :meth:`shutdown` on exit (it is also called by ``atexit``).
    """

    config: WaitstateConfig
    instance_id: str

    def __init__(self, config: WaitstateConfig) -> None:
        if not isinstance(config, WaitstateConfig):
            raise WaitstateError(
                "INVALID_OPTIONS", f"WaitstateClient: config must be a WaitstateConfig, got {type(config).__name__}", field="config"
            )
        self.config = config
        self.instance_id = config.instance_id  # type: ignore[assignment]
        report = safe_reporter(config.on_error)
        engine: Any
        if config.agent_url is not None:
            from ._agent import AgentEngine

            engine = AgentEngine(config.agent_url, config.request_timeout_ms, self.instance_id, report)
        else:
            from . import _native

            engine = _native.Engine(
                config.publish_key,
                config.secret_key,
                config.base_url,
                config.site_id,
                self.instance_id,
                config.pulse_interval_ms,
                config.safe_mode_strategy,
                float(config.safe_mode_max_rps),
                config.request_timeout_ms,
                config.push,
                report,
                WaitstateError,
                RESULTS,
            )
        self._engine = engine
        # The engine's own methods, bound once, shadow the methods below: a call
        # goes straight to the engine with no Python frame in between (the
        # methods below document the API and serve type checkers).
        self.gate = engine.gate  # type: ignore[method-assign]
        self.report_latency = engine.report_latency  # type: ignore[method-assign]
        self.report_error = engine.report_error  # type: ignore[method-assign]
        self.report = engine.report  # type: ignore[method-assign]
        self._shutdown_lock = threading.Lock()
        self._shut_down = False
        _live.add(self)

    def gate(self, tag: str = "__default__", weight: float = 1) -> GateResult:
        """Whether a call of ``tag`` weighing ``weight`` may proceed, by the policy in force.

        Synchronous, in memory, never raises. Counted in the next pulse.
        """
        return self._engine.gate(tag, weight)  # pragma: no cover -- shadowed in __init__

    def report_latency(self, ms: float, tag: Optional[str] = None) -> None:
        """Records a latency observation (ms) for ``tag`` (``__default__`` when None)."""
        self._engine.report_latency(ms, tag)  # pragma: no cover

    def report_error(self, tag: Optional[str] = None) -> None:
        """Counts one error for ``tag``."""
        self._engine.report_error(tag)  # pragma: no cover

    def report(self, metric: str, value: float, tag: Optional[str] = None) -> None:
        """Records a custom metric (min/max/sum/count per pulse). A bad name or value goes to on_error, dropped."""
        self._engine.report(metric, value, tag)  # pragma: no cover

    def start_timer(self, tag: Optional[str] = None) -> Timer:
        """A running timer; calling it (or ``.stop()``) reports the elapsed ms for ``tag``."""
        return Timer(self, tag)

    def timer(self, tag: Optional[str] = None) -> Timer:
        """A timer for a ``with`` block: reports the block's duration, and an error if it raises."""
        return Timer(self, tag)

    def ready(self, timeout: float = 10.0) -> bool:
        """Waits (up to ``timeout`` s) for the first policy; False on timeout. Never raises."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if self.status().get("synced"):
                return True
            if time.monotonic() >= deadline or self._shut_down:
                return False
            time.sleep(0.02)

    def status(self) -> Dict[str, Any]:
        """A snapshot: synced, last_sync_at, policy_version, policy_status, safe_mode, pending_pulses, …"""
        return self._engine.status()

    def shutdown(self) -> None:
        """Stops the background work and sends one final pulse with what is pending. Idempotent.

        ``gate()`` keeps answering afterwards, from the last policy, without pulsing.
        """
        with self._shutdown_lock:
            if self._shut_down:
                return
            self._shut_down = True
        _live.discard(self)
        self._engine.shutdown()

    def __enter__(self) -> "WaitstateClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        mode = f"agent {self.config.agent_url}" if self.config.agent_url else self.config.base_url
        return f"<WaitstateClient {self.instance_id} → {mode}>"


