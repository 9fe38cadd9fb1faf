"""The Python SDK's figures (run by bench/python.bench.mjs; printed, never asserted).

1. gate() from Python against a plain dict.get in the same run (target: <= 3x),
   medians over interleaved rounds, on a synced client whose policy has tag limits;
2. objects allocated per gate() call on the happy path (target: 0), by
   sys.getallocatedblocks and by tracemalloc;
3. requests per second of a minimal FastAPI app (driven by httpx's ASGI
   transport) and Flask app (WSGI calls) in process, with and without the
   integration (target: <= 3 % lost); no sockets, so the framework and the
   driver are all there is to measure.
"""
from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sdk-python"))
sys.path.insert(0, str(ROOT / "sdk-python" / "tests"))

from control_plane import ControlPlane  # noqa: E402

from waitstate import WaitstateClient, WaitstateConfig  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", 5))
CALLS = int(os.environ.get("BENCH_CALLS", 200_000))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", 1000))


def per_call_ns(fn, n: int) -> float:
    start = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - start) / n


def main() -> None:
    cp = ControlPlane(pulse_interval=1000).start()
    cp.set_policy(tagMaxWeights={"free": 0, "pro": 5, "internal": None}, globalMaxWeight=10)
    client = WaitstateClient(
        WaitstateConfig(publish_key=cp.publish_key, secret_key=cp.secret_key, base_url=cp.url, pulse_interval_ms=1000, on_error=lambda e: None)
    )
    assert client.ready(10), "the client did not sync"
    print(f"python {sys.version.split()[0]} ({sys.executable}); {ROUNDS} rounds of {CALLS} calls", flush=True)

    # ------------------------------------------------------------ 1. gate() vs dict.get
    limits = {"free": 0, "pro": 5, "internal": None}
    gate = client.gate
    get = limits.get

    def run_gate(n: int) -> None:
        for _ in range(n):
            gate("pro", 1)

    def run_get(n: int) -> None:
        for _ in range(n):
            get("pro", 1)

    from waitstate import _native

    trivial = _native.round_ms

    def run_trivial(n: int) -> None:
        # the floor: the cheapest call into the extension (PyO3's per-call cost)
        for _ in range(n):
            trivial(1.0)

    def run_empty(n: int) -> None:
        for _ in range(n):
            pass

    gate_ns, get_ns, loop_ns, trivial_ns = [], [], [], []
    for _ in range(ROUNDS):
        loop_ns.append(per_call_ns(run_empty, CALLS))
        trivial_ns.append(per_call_ns(run_trivial, CALLS))
        get_ns.append(per_call_ns(run_get, CALLS))
        gate_ns.append(per_call_ns(run_gate, CALLS))
    loop = statistics.median(loop_ns)
    g, d = statistics.median(gate_ns), statistics.median(get_ns)
    print(f"gate():   {g:7.1f} ns/call (loop included; {g - loop:6.1f} ns without the loop's {loop:.1f} ns)")
    print(f"dict.get: {d:7.1f} ns/call (loop included; {d - loop:6.1f} ns without)")
    t = statistics.median(trivial_ns)
    print(f"trivial native call: {t:7.1f} ns/call (loop included; {t - loop:6.1f} ns without): the extension's floor")
    print(f"gate()/dict.get: {g / d:.2f}x with the loop, {(g - loop) / (d - loop):.2f}x without (target <= 3x)")
    assert gate("free", 1) == (False, "tag_blocked")

    # ------------------------------------------------------------ 2. allocations per call
    n = 100_000
    run_gate(1000)
    gc.collect()
    gc.disable()
    before = sys.getallocatedblocks()
    run_gate(n)
    blocks = sys.getallocatedblocks() - before
    gc.enable()
    tracemalloc.start()
    run_gate(1000)
    snap1 = tracemalloc.take_snapshot()
    run_gate(n)
    snap2 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.count_diff for s in snap2.compare_to(snap1, "filename") if s.count_diff > 0)
    print(f"allocations: {blocks / n:.4f} blocks/call (sys.getallocatedblocks, {blocks} over {n} calls); "
          f"tracemalloc: {grown} new blocks over {n} calls (target 0)")

    # ------------------------------------------------------------ 3. middleware throughput
    fastapi_rps()(client)
    flask_rps(client)
    client.shutdown()
    cp.stop()


def fastapi_rps():
    from fastapi import Depends, FastAPI

    from waitstate.middleware.asgi import WaitStateMiddleware
    from waitstate.middleware.fastapi import create_dependency, create_response_hook

    def bare():
        app = FastAPI()

        @app.get("/search")
        async def search():
            return {"results": []}

        return app

    def with_waitstate(client):
        app = FastAPI()
        gate = create_dependency(client)
        app.middleware("http")(create_response_hook(client))

        @app.get("/search")
        async def search(_=Depends(gate)):  # noqa: B008
            return {"results": []}

        return app

    def with_asgi_middleware(client):
        app = bare()
        app.add_middleware(WaitStateMiddleware, client=client)
        return app

    def with_plain_dependency():
        # the cost of any dependency, for scale: FastAPI resolves it per request
        app = FastAPI()

        async def nothing():
            return None

        @app.get("/search")
        async def search(_=Depends(nothing)):  # noqa: B008
            return {"results": []}

        return app

    import httpx

    # A real in-process driver: httpx's ASGI transport gives each request the
    # receive a server gives (the body, then a wait until the response is done,
    # then http.disconnect). A bare receive that answers http.request forever
    # spins Starlette's disconnect listener (BaseHTTPMiddleware's streaming
    # response) and the run never ends.
    statuses = []

    async def drive(app, n):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
            start = time.perf_counter()
            for _ in range(n):
                statuses.append((await http.get("/search", headers={"x-waitstate-tag": "pro"})).status_code)
            return n / (time.perf_counter() - start)

    def measure(client):
        apps = {
            "bare": bare(),
            "dependency + response hook": with_waitstate(client),
            "plain ASGI middleware": with_asgi_middleware(client),
            "an empty dependency (scale)": with_plain_dependency(),
        }
        report("FastAPI", apps, lambda app: asyncio.run(drive(app, REQUESTS)))
        assert set(statuses) == {200}, set(statuses)

    return measure


def flask_rps(client) -> None:
    from flask import Flask
    from werkzeug.test import EnvironBuilder

    from waitstate.middleware.flask import init_app

    def make(gated: bool):
        app = Flask("bench")
        if gated:
            init_app(app, client)

        @app.route("/search")
        def search():
            return {"results": []}

        return app

    environ = EnvironBuilder(path="/search", headers={"x-waitstate-tag": "pro"}).get_environ()
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def drive(app):
        start = time.perf_counter()
        for _ in range(REQUESTS):
            body = app(dict(environ), start_response)
            for _chunk in body:
                pass
            body.close()
        return REQUESTS / (time.perf_counter() - start)

    report("Flask", {"bare": make(False), "init_app": make(True)}, drive)
    assert set(statuses) == {"200 OK"}, set(statuses)


def report(framework: str, apps, drive) -> None:
    for app in apps.values():
        drive(app)  # warm up
    samples = {name: [] for name in apps}
    for _ in range(ROUNDS):
        for name, app in apps.items():
            samples[name].append(drive(app))
    base = statistics.median(samples["bare"])
    for name, values in samples.items():
        rps = statistics.median(values)
        loss = "" if name == "bare" else f", {100 * (1 - rps / base):5.1f} % lost (target <= 3 %)"
        print(f"{framework:8s} {name:30s} {rps:9.0f} req/s{loss}", flush=True)


if __name__ == "__main__":
    main()
