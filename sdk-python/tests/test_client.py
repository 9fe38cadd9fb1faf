"""The in-process client against the stand-in control plane: the API, never raising, the final pulse."""
from __future__ import annotations

from typing import Any, Callable

from conftest import Tracked, eventually
from control_plane import ControlPlane

from waitstate import GateResult, WaitstateError


def test_gate_answers_shared_results_and_never_raises(tracked: Callable[..., Tracked], cp: ControlPlane) -> None:
    cp.set_policy(tagMaxWeights={"free": 0}, globalMaxWeight=5)
    t = tracked(pulse_interval_ms=100)
    assert t.client.gate("free") == GateResult(True, "allowed")  # bootstrap: allowed until the first sync
    assert t.client.ready(5)
    eventually(lambda: t.client.gate("free").reason == "tag_blocked", 5, "the policy")
    assert t.client.gate("free") is t.client.gate("free")  # one shared value per decision
    assert t.client.gate() == (True, "allowed")
    assert t.client.gate("pro", 6) == (False, "over_weight")
    assert t.client.gate("pro", float("nan")) == (True, "allowed")  # NaN weighs 1
    assert t.client.gate("pro", -3) == (True, "allowed")  # negative weighs 0
    bad: Any = t.client
    assert bad.gate(None, "heavy") == (True, "allowed")  # wrong types: the default tag, weight 1
    assert bad.gate(42, object()).allowed
    status = t.client.status()
    assert status["synced"] and status["policy_version"] == cp.policy["version"] and status["policy_status"] == "ok"


def test_telemetry_and_the_final_pulse(tracked: Callable[..., Tracked], cp: ControlPlane) -> None:
    t = tracked(pulse_interval_ms=60_000)  # no pulse but the first and the final one
    assert t.client.ready(5)
    pulses = len(cp.pulses)
    for _ in range(7):
        t.client.gate("search", 1)
    t.client.report_latency(12.5, "search")
    with t.client.timer("search"):
        pass
    stop = t.client.start_timer("search")
    assert stop() >= 0 and stop() == 0  # reports once
    try:
        with t.client.timer("search"):
            raise ValueError("backend")
    except ValueError:
        pass
    t.client.report("queue_depth", 87, "search")
    t.client.report_latency(float("nan"))
    t.client.report("Not A Name", 1)
    t.client.shutdown()
    t.client.shutdown()  # idempotent
    assert t.client.gate("search").allowed  # still answers after shutdown
    assert len(cp.pulses) > pulses
    final = cp.pulses[-1].body
    entry = next(m for m in final["tagMetrics"] if m["tag"] == "search")
    assert entry["count"] == 7
    assert entry["latencyHistogram"]["n"] == 4
    assert entry["errors"] == 1
    assert entry["customMetrics"]["queue_depth"] == {"min": 87, "max": 87, "sum": 87, "count": 1}
    eventually(lambda: {"INVALID_VALUE", "INVALID_METRIC_NAME"} <= t.codes(), 2, "the refused values reported")
    assert all(isinstance(e, WaitstateError) for e in t.errors)
    assert cp.counted_usage(t.client.instance_id) == 7


def test_push_reaches_the_crate_and_turning_it_off_stops_the_socket(tracked: Callable[..., Tracked], cp: ControlPlane) -> None:
    # The stand-in control plane serves no push socket: with push on, the crate's
    # subscriber tries it and reports PUSH_FAILED while pulses go on; with push off it never tries.
    on = tracked(instance_id="push-on")
    off = tracked(instance_id="push-off", push=False)
    eventually(lambda: "PUSH_FAILED" in on.codes(), 10, "PUSH_FAILED from the push subscriber")
    eventually(lambda: on.client.status()["synced"] and off.client.status()["synced"], 10, "both clients synced")
    before = len([p for p in cp.pulses if p.body["instanceId"] == "push-off"])
    cp.wait_for(lambda: len([p for p in cp.pulses if p.body["instanceId"] == "push-off"]) >= before + 2, 10, "pulses go on")
    assert "PUSH_FAILED" not in off.codes()
