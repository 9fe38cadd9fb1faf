"""Fixtures: the stand-in control plane (a real local server) and clients wired to it."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

SDK = Path(__file__).resolve().parents[1]
REPO = SDK.parent
sys.path.insert(0, str(SDK))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from control_plane import ControlPlane  # noqa: E402

from waitstate import WaitstateClient, WaitstateConfig, WaitstateError  # noqa: E402

VECTORS = REPO / "protocol" / "vectors"


def eventually(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Tracked:
    """A client against a control plane, with the errors it reported."""

    def __init__(self, cp: ControlPlane, **options: Any) -> None:
        self.errors: List[WaitstateError] = []
        options.setdefault("on_error", self.errors.append)
        self.client = WaitstateClient(
            WaitstateConfig(publish_key=cp.publish_key, secret_key=cp.secret_key, base_url=cp.url, **options)
        )

    def codes(self) -> "set[str]":
        return {e.code for e in self.errors}


@pytest.fixture
def cp() -> Iterator[ControlPlane]:
    plane = ControlPlane(pulse_interval=100).start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def tracked(cp: ControlPlane) -> Iterator[Callable[..., Tracked]]:
    made: List[Tracked] = []

    def make(**options: Any) -> Tracked:
        t = Tracked(cp, **options)
        made.append(t)
        return t

    try:
        yield make
    finally:
        for t in made:
            t.client.shutdown()


@pytest.fixture
def blocking_client(cp: ControlPlane, tracked: Callable[..., Tracked]) -> WaitstateClient:
    """A synced client whose policy blocks the tag "free" and allows weight <= 5 elsewhere."""
    cp.set_policy(tagMaxWeights={"free": 0}, globalMaxWeight=5)
    t = tracked(pulse_interval_ms=100)
    assert t.client.ready(5)
    eventually(lambda: t.client.gate("free").reason == "tag_blocked", 5, "the blocking policy")
    return t.client


os.environ.pop("WAITSTATE_BASE_URL", None)
