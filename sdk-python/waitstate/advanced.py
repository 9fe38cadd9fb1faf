"""Lower-level parts of the engine, for tests, replays and tools (the Node SDK's "advanced exports").

All of it is the Rust crate's code: the gate at a given time, policy
validation, the mergeable latency histogram, pulse and token-exchange signing,
and the client lifecycle's rules.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from . import _native
from ._result import GateResult, result_of

__all__ = [
    "Gate",
    "Histogram",
    "Lifecycle",
    "TokenLifecycle",
    "PolicyError",
    "parse_policy",
    "sign_pulse",
    "sign_token_exchange",
    "policy_pacing",
    "round_ms",
    "pulse_delay_ms",
    "poll_delay_ms",
    "backoff_ms",
    "token_refresh_delay_ms",
    "token_retry_delay_ms",
    "classify_pulse_answer",
    "classify_poll_answer",
    "pulse_leaves_outbox",
]

Histogram = _native.Histogram
sign_pulse = _native.sign_pulse
sign_token_exchange = _native.sign_token_exchange
round_ms = _native.round_ms
pulse_delay_ms = _native.pulse_delay_ms
poll_delay_ms = _native.poll_delay_ms
backoff_ms = _native.backoff_ms
token_refresh_delay_ms = _native.token_refresh_delay_ms
token_retry_delay_ms = _native.token_retry_delay_ms
classify_pulse_answer = _native.classify_pulse_answer
classify_poll_answer = _native.classify_poll_answer
pulse_leaves_outbox = _native.pulse_leaves_outbox


class PolicyError(ValueError):
    """A policy that cannot be installed: ``path`` is the first field at fault (``"tagMaxWeights.free"``, ``"(root)"``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def parse_policy(policy: Any) -> Dict[str, Any]:
    """Validates a policy (as parsed from JSON); the normalized policy, or :class:`PolicyError`."""
    ok, payload, message = _native.parse_policy(json.dumps(policy, allow_nan=False))
    if not ok:
        raise PolicyError(payload, message)
    return json.loads(payload)


def policy_pacing(policy: Dict[str, Any]) -> Tuple[Optional[float], float, Optional[float]]:
    """``(interval_ms, lease_seconds, stand_down_ms)`` a policy sets (cap_exceeded and suspended stretch them)."""
    return _native.policy_pacing(json.dumps(policy))


class Gate:
    """The gate with an explicit clock (epoch ms) and no background work."""

    def __init__(self, safe_mode_strategy: str = "open", safe_mode_max_rps: float = 50) -> None:
        self._gate = _native.PureGate(safe_mode_strategy, float(safe_mode_max_rps))

    def set_policy(self, policy: Dict[str, Any], synced_at: float) -> None:
        """Installs a policy as synced at ``synced_at``; :class:`PolicyError` when it is invalid."""
        try:
            self._gate.set_policy_at(json.dumps(policy), float(synced_at))
        except ValueError as error:
            path, _, message = str(error).partition(": ")
            raise PolicyError(path, message) from None

    def gate(self, tag: str = "__default__", weight: float = 1, *, now: float) -> GateResult:
        allowed, reason = self._gate.gate_at(tag, weight, float(now))
        return result_of(allowed, reason)


class Lifecycle:
    """The client lifecycle's rules as a state machine; events and state use the wire names
    (``{"type": "pulse_done", "now": …, "delivered": True, "random": 0.5}``)."""

    def __init__(self, pulse_interval_ms: float = 5000, **state: Any) -> None:
        self._machine = _native.Lifecycle(float(pulse_interval_ms))
        if state:
            self._machine.merge_state(json.dumps(state))

    def step(self, event: Dict[str, Any]) -> List[str]:
        return self._machine.step(json.dumps(event))

    @property
    def state(self) -> Dict[str, Any]:
        return json.loads(self._machine.state())

    def due(self, now: float) -> Dict[str, bool]:
        resume, pulse, poll, lease_check = self._machine.due(float(now))
        return {"resume": resume, "pulse": pulse, "poll": poll, "leaseCheck": lease_check}

    def next_wake_at(self) -> Optional[float]:
        return self._machine.next_wake_at()


class TokenLifecycle:
    """When the JWT is exchanged, renewed and retried."""

    def __init__(self, **state: Any) -> None:
        self._machine = _native.TokenLifecycle()
        if state:
            self._machine.merge_state(json.dumps(state))

    def step(self, event: Dict[str, Any]) -> None:
        self._machine.step(json.dumps(event))

    @property
    def state(self) -> Dict[str, Any]:
        return json.loads(self._machine.state())

    def usable(self, now: float) -> bool:
        return self._machine.usable(float(now))

    def due(self, now: float) -> bool:
        return self._machine.due(float(now))
