"""Agent mode: the client talks to a real agent (the Rust binary `waitstate-agent`) on localhost."""
from __future__ import annotations

from typing import Iterator, List

import pytest
from agent_process import Agent, agent_unavailable, free_port
from conftest import eventually
from control_plane import ControlPlane

from waitstate import GateResult, WaitstateClient, WaitstateConfig, WaitstateError

pytestmark = pytest.mark.skipif(agent_unavailable() is not None, reason=agent_unavailable() or "")


@pytest.fixture
def agent(cp: ControlPlane) -> Iterator[Agent]:
    a = Agent(
        {
            "WAITSTATE_PUBLISH_KEY": cp.publish_key,
            "WAITSTATE_SECRET_KEY": cp.secret_key,
            "WAITSTATE_BASE_URL": cp.url,
            "WAITSTATE_INSTANCE_ID": "agent-1",
        }
    )
    try:
        yield a
    finally:
        a.stop()


def agent_client(url: str, errors: List[WaitstateError], **options: object) -> WaitstateClient:
    return WaitstateClient(WaitstateConfig(publish_key="", secret_key="", agent_url=url, on_error=errors.append, **options))  # type: ignore[arg-type]


def test_gate_and_reports_go_through_the_agent(cp: ControlPlane, agent: Agent) -> None:
    errors: List[WaitstateError] = []
    client = agent_client(agent.url, errors)
    try:
        assert client.gate("free", 1) == GateResult(True, "allowed")
        cp.set_policy(tagMaxWeights={"free": 0}, globalMaxWeight=5)
        eventually(lambda: client.gate("free").reason == "tag_blocked", 10, "the agent's policy")
        assert client.gate("free") == (False, "tag_blocked")
        assert client.gate("pro", 9) == (False, "over_weight")
        assert client.gate("pro", 2).allowed
        assert client.status()["synced"] is True and client.status()["mode"] == "agent"

        client.report_latency(42.5, "search")
        client.report_error("search")
        client.report("queue_depth", 87, "search")
        with client.timer("search"):
            pass

        def search_reported() -> bool:
            for p in cp.pulses:
                for m in p.body.get("tagMetrics", []):
                    if m["tag"] == "search" and m.get("errors") == 1 and "queue_depth" in (m.get("customMetrics") or {}):
                        return True
            return False

        eventually(search_reported, 10, "the agent's pulse with the reports")
    finally:
        client.shutdown()
    assert errors == []


def test_bad_telemetry_is_refused_locally_and_never_raises(agent: Agent) -> None:
    errors: List[WaitstateError] = []
    client = agent_client(agent.url, errors)
    try:
        client.report_latency(float("nan"), "x")
        client.report_latency(-1)
        client.report("Latency", 1)
        client.report("ok_name", float("inf"))
        assert [e.code for e in errors] == ["INVALID_VALUE", "INVALID_VALUE", "INVALID_METRIC_NAME", "INVALID_VALUE"]
        assert client.gate(None, "heavy").allowed  # type: ignore[arg-type]
    finally:
        client.shutdown()


def test_an_unreachable_agent_fails_open_and_reports_arrive_when_it_is_back(cp: ControlPlane) -> None:
    port = free_port()
    errors: List[WaitstateError] = []
    client = agent_client(f"http://127.0.0.1:{port}", errors, request_timeout_ms=200)
    try:
        assert client.gate("free", 1_000) == (True, "allowed")
        client.report_latency(7, "late")
        eventually(lambda: any(e.code == "AGENT_UNREACHABLE" for e in errors), 5, "AGENT_UNREACHABLE")
        assert client.status()["agent_reachable"] is False
        assert client.status()["pending_reports"] == 1

        # the agent comes up on that port: the queued report is delivered, nothing lost
        agent = Agent({"WAITSTATE_PUBLISH_KEY": cp.publish_key, "WAITSTATE_SECRET_KEY": cp.secret_key, "WAITSTATE_BASE_URL": cp.url}, port)
        try:
            eventually(lambda: client.status()["pending_reports"] == 0, 10, "the queued report delivered")

            def late_reported() -> bool:
                return any(m["tag"] == "late" for p in cp.pulses for m in p.body.get("tagMetrics", []))

            eventually(late_reported, 10, "the late report in a pulse")
            assert client.gate("free", 1).allowed and client.status()["agent_reachable"] is True
        finally:
            agent.stop()
    finally:
        client.shutdown()
