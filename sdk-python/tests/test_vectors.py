"""Every shared vector (protocol/vectors) through the Python API: gate, histogram, HMAC, policy, lifecycle."""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List

import pytest
from conftest import VECTORS

from waitstate.advanced import (
    Gate,
    Histogram,
    Lifecycle,
    PolicyError,
    TokenLifecycle,
    backoff_ms,
    classify_poll_answer,
    classify_pulse_answer,
    parse_policy,
    policy_pacing,
    poll_delay_ms,
    pulse_delay_ms,
    pulse_leaves_outbox,
    round_ms,
    sign_pulse,
    sign_token_exchange,
    token_refresh_delay_ms,
    token_retry_delay_ms,
)


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def number(value: Any) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "-0": -0.0}.get(value, value) if isinstance(value, str) else value


def ids(cases: List[Dict[str, Any]]) -> List[str]:
    return [c.get("name", str(i))[:80] for i, c in enumerate(cases)]


GATE = load("gate.json")["cases"]


@pytest.mark.parametrize("case", GATE, ids=ids(GATE))
def test_gate(case: Dict[str, Any]) -> None:
    config = case.get("config") or {}
    gate = Gate(config.get("safeModeStrategy", "open"), config.get("safeModeMaxRps", 50))
    if case["lastSyncAt"] is not None:
        gate.set_policy(case["policy"], case["lastSyncAt"])
    for call in case["calls"]:
        args: List[Any] = [call["tag"]] if "tag" in call else []
        if "weight" in call:
            args = [call.get("tag", "__default__"), number(call["weight"])]
        got = gate.gate(*args, now=call["now"])
        assert {"allowed": got.allowed, "reason": got.reason} == call["expect"], call


HISTOGRAM = load("histogram.json")["cases"]


def recorded(values: List[Any]) -> Any:
    h = Histogram()
    for v in values:
        h.record(number(v))
    return h


def check_encoding(h: Any, expect: Dict[str, Any]) -> None:
    n, s, lo, hi, pairs = h.encode()
    assert (n, lo, hi, pairs) == (expect["n"], expect["lo"], expect["hi"], expect["b"])
    assert s == pytest.approx(expect["s"], rel=1e-9, abs=1e-12)


def check_quantiles(h: Any, quantiles: List[Any]) -> None:
    for q, want in quantiles:
        got = h.quantile(q)
        assert (got is None) if want is None else got == pytest.approx(want, rel=1e-9), (q, got, want)


@pytest.mark.parametrize("case", HISTOGRAM, ids=ids(HISTOGRAM))
def test_histogram(case: Dict[str, Any]) -> None:
    kind = case["kind"]
    if kind == "index":
        assert Histogram.bucket_index(case["value"]) == case["expectIndex"]
    elif kind == "bounds":
        upper = Histogram.upper_bounds()
        assert (upper[0], upper[10], upper[-1], len(upper)) == (case["first"], case["tenth"], case["last"], case["count"])
    elif kind == "record":
        h = recorded(case["values"])
        check_encoding(h, case["expect"])
        check_quantiles(h, case.get("quantiles", []))
    elif kind == "merge":
        a, b = recorded(case["a"]), recorded(case["b"])
        a.merge(b)
        check_encoding(a, case["expect"])
        check_quantiles(a, case.get("quantiles", []))
    elif kind == "decode_error":
        e = case["encoded"]
        with pytest.raises((ValueError, TypeError, KeyError)):
            if not isinstance(e, dict):
                raise TypeError("not an object")
            Histogram.decode(e["n"], e["s"], e["lo"], e["hi"], e["b"])
    else:
        pytest.fail(f"unknown kind {kind}")


HMAC = load("hmac.json")["cases"]
TOKEN = load("token-exchange.json")["cases"]


@pytest.mark.parametrize("case", HMAC, ids=ids(HMAC))
def test_hmac(case: Dict[str, Any]) -> None:
    assert sign_pulse(case["body"], case["timestamp"], case["secretKey"]) == case["expect"]


@pytest.mark.parametrize("case", TOKEN, ids=ids(TOKEN))
def test_token_exchange_signature(case: Dict[str, Any]) -> None:
    assert sign_token_exchange(case["body"], case["timestamp"], case["secretKey"]) == case["expect"]


POLICY = load("policy.json")["cases"]


@pytest.mark.parametrize("case", POLICY, ids=ids(POLICY))
def test_policy(case: Dict[str, Any]) -> None:
    if case["valid"]:
        assert parse_policy(case["input"]) == case["policy"]
    else:
        with pytest.raises(PolicyError) as caught:
            parse_policy(case["input"])
        assert caught.value.path == case["path"]


LIFECYCLE = load("lifecycle.json")
FUNCTIONS = {
    "roundMs": lambda a: round_ms(a["ms"]),
    "pulseDelayMs": lambda a: pulse_delay_ms(a["intervalMs"], a["random"]),
    "pollDelayMs": lambda a: poll_delay_ms(a["intervalMs"], a["random"]),
    "backoffMs": lambda a: backoff_ms(a["intervalMs"], a["leaseMs"], a["failures"], a["random"]),
    "tokenRefreshDelayMs": lambda a: token_refresh_delay_ms(a["expiresAt"], a["now"]),
    "tokenRetryDelayMs": lambda a: token_retry_delay_ms(a["failures"], a["random"]),
    "classifyPulseAnswer": lambda a: classify_pulse_answer(a["status"], a["counted"], a["policyValid"]),
    "classifyPollAnswer": lambda a: classify_poll_answer(a["status"], a["policyValid"]),
    "pulseLeavesOutbox": lambda a: pulse_leaves_outbox(a["outcome"]),
    "policyPacing": lambda a: dict(zip(("intervalMs", "leaseSeconds", "standDownMs"), policy_pacing(a["policy"]))),
}


@pytest.mark.parametrize("case", LIFECYCLE["functions"], ids=ids(LIFECYCLE["functions"]))
def test_lifecycle_function(case: Dict[str, Any]) -> None:
    assert FUNCTIONS[case["fn"]](case["args"]) == case["expect"]


@pytest.mark.parametrize("case", LIFECYCLE["client"], ids=ids(LIFECYCLE["client"]))
def test_lifecycle_client(case: Dict[str, Any]) -> None:
    machine = Lifecycle(case["pulseIntervalMs"], **case.get("state", {}))
    for step in case["steps"]:
        expect = step["expect"]
        if "event" in step:
            assert machine.step(step["event"]) == expect["actions"], step
            state = machine.state
            for field, want in expect.get("state", {}).items():
                assert state[field] == want, (step, field)
        else:
            due = machine.due(step["due"])
            for field in ("resume", "pulse", "poll", "leaseCheck"):
                if field in expect:
                    assert due[field] == expect[field], (step, field)
            if "wakeAt" in expect:
                assert machine.next_wake_at() == expect["wakeAt"], step


@pytest.mark.parametrize("case", LIFECYCLE["token"], ids=ids(LIFECYCLE["token"]))
def test_lifecycle_token(case: Dict[str, Any]) -> None:
    machine = TokenLifecycle(**case.get("state", {}))
    for step in case["steps"]:
        expect = step["expect"]
        if "event" in step:
            machine.step(step["event"])
            state = machine.state
            for field, want in expect.get("state", {}).items():
                assert state[field] == want, (step, field)
            for now, usable in expect.get("usable", []):
                assert machine.usable(now) == usable, (step, now)
        else:
            assert machine.due(step["due"]) == expect, step
