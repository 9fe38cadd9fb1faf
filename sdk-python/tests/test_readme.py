"""Each complete file of README.md, run as written (in its own interpreter, as a user would),
against the stand-in control plane with a policy that blocks the tag "free"."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest
from conftest import SDK
from control_plane import ControlPlane

README = (SDK / "README.md").read_text()
FILES: Dict[str, str] = dict(re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", README, re.S))
QUICK_START = re.search(r"## Quick start\n\n```python\n(.*?)```", README, re.S)

# What each framework's real test client does with the file's app: a request per tag, as JSON.
DRIVERS = {
    "fastapi_app.py": """
from fastapi.testclient import TestClient
import fastapi_app as m
http = TestClient(m.app)
out = {tag: http.get("/search", headers={"x-waitstate-tag": tag}) for tag in ("free", "pro")}
""",
    "flask_app.py": """
import flask_app as m
http = m.app.test_client()
out = {tag: http.get("/search", headers={"x-waitstate-tag": tag}) for tag in ("free", "pro")}
""",
    "django_app.py": """
import django_app as m
from django.test import Client
http = Client()
out = {tag: http.get("/search", HTTP_X_WAITSTATE_TAG=tag) for tag in ("free", "pro")}
""",
}
PRELUDE = """
import json, sys, time
sys.path.insert(0, {sdk!r})
"""
# Wait for the first policy (a real app would answer allowed until then), then report.
EPILOGUE = """
client = m.client if hasattr(m, "client") else m.settings.WAITSTATE_CLIENT
assert client.ready(10)
deadline = time.time() + 10
while client.gate("free").allowed and time.time() < deadline:
    time.sleep(0.02)
"""


def run(source: str, cwd: Path, cp: ControlPlane) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "WAITSTATE_PUBLISH_KEY": cp.publish_key,
        "WAITSTATE_SECRET_KEY": cp.secret_key,
        "WAITSTATE_BASE_URL": cp.url,
        "PYTHONPATH": str(SDK),
    }
    return subprocess.run([sys.executable, "-c", source], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_the_readme_has_one_complete_file_per_framework() -> None:
    assert set(FILES) == set(DRIVERS)


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_framework_file_runs_as_written(name: str, tmp_path: Path, cp: ControlPlane) -> None:
    cp.set_policy(tagMaxWeights={"free": 0})
    (tmp_path / name).write_text(FILES[name])
    driver = DRIVERS[name].strip().split("\n")
    source = "\n".join(
        [PRELUDE.format(sdk=str(SDK)), driver[0], driver[1], EPILOGUE]
        + driver[2:]
        + ["print(json.dumps({t: [r.status_code, r.headers.get('retry-after'), json.loads(r.get_data() if hasattr(r, \"get_data\") else r.content)] for t, r in out.items()}))"]
    )
    done = run(source, tmp_path, cp)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["free"][:2] == [429, "60"]
    assert seen["free"][2]["error"]["reason"] == "tag_blocked"
    assert seen["pro"] == [200, None, {"results": []}]


def test_quick_start_runs_as_written(tmp_path: Path, cp: ControlPlane) -> None:
    assert QUICK_START is not None
    done = run(QUICK_START.group(1), tmp_path, cp)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # allowed before the first policy: nothing printed
