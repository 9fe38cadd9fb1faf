"""End to end against the real control plane (run by e2e/sdk-python.test.ts, which starts
`wrangler dev`, creates the tenant and a rule "latency of search > 100 ms → block search").

A FastAPI app with the WaitState dependency and response hook serves /search
slowly (250 ms) through its real test client; the response hook reports that
latency, the pulses carry it, the rule fires, and the app answers 429. Prints
one JSON line with what it saw; exits 1 if /search was never denied.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi import Depends, FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from waitstate import WaitstateClient, WaitstateConfig, WaitstateError  # noqa: E402
from waitstate.middleware.fastapi import create_dependency, create_response_hook  # noqa: E402

errors: "list[WaitstateError]" = []
client = WaitstateClient(
    WaitstateConfig(
        publish_key=os.environ["WAITSTATE_PUBLISH_KEY"],
        secret_key=os.environ["WAITSTATE_SECRET_KEY"],
        base_url=os.environ["WAITSTATE_BASE_URL"],
        site_id=os.environ["WAITSTATE_SITE_ID"],
        instance_id="python-e2e",
        pulse_interval_ms=1000,
        on_error=errors.append,
    )
)

app = FastAPI()
gate = create_dependency(client)
app.middleware("http")(create_response_hook(client))


@app.get("/search")
async def search(_=Depends(gate)):  # noqa: B008
    await asyncio.sleep(0.25)  # a slow backend
    return {"results": []}


@app.get("/health")
async def health(_=Depends(gate)):  # noqa: B008
    return {"ok": True}


def main() -> int:
    http = TestClient(app)
    synced = client.ready(30)
    started = time.monotonic()
    first = http.get("/search", headers={"x-waitstate-tag": "search"})
    denied = None
    statuses = [first.status_code]
    while time.monotonic() - started < 60:
        r = http.get("/search", headers={"x-waitstate-tag": "search"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            denied = r
            break
    other = http.get("/health", headers={"x-waitstate-tag": "checkout"})
    status = client.status()
    client.shutdown()
    print(
        json.dumps(
            {
                "synced": synced,
                "firstStatus": first.status_code,
                "deniedAfterMs": round((time.monotonic() - started) * 1000) if denied is not None else None,
                "status": denied.status_code if denied is not None else None,
                "retryAfter": denied.headers.get("retry-after") if denied is not None else None,
                "body": denied.json() if denied is not None else None,
                "otherTagStatus": other.status_code,
                "requests": len(statuses),
                "policyVersion": status["policy_version"],
                "errors": [f"{e.code}: {e.message}" for e in errors],
            }
        )
    )
    return 0 if denied is not None else 1


if __name__ == "__main__":
    sys.exit(main())
