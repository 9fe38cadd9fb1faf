"""The real WaitState agent (the Rust binary `waitstate-agent`, rust/agent) as a child process on a free port."""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Dict, Optional

REPO = Path(__file__).resolve().parents[2]
# scripts/build-python.mjs builds the agent (scripts/build-agent.mjs, the `dev` profile) and passes its path.
AGENT_BIN = Path(os.environ.get("WAITSTATE_AGENT_BIN") or REPO / "rust" / "target" / "debug" / "waitstate-agent")
AGENT_BUILD_FAILED = os.environ.get("WAITSTATE_AGENT_BUILD_FAILED")


def agent_unavailable() -> Optional[str]:
    """Why agent mode's tests cannot run here (they skip), or None."""
    if AGENT_BUILD_FAILED or AGENT_BIN.exists():
        return None
    return os.environ.get("WAITSTATE_AGENT_SKIP") or f"no agent binary at {AGENT_BIN}: node scripts/build-agent.mjs --dev"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    def __init__(self, env: Dict[str, str], port: Optional[int] = None) -> None:
        if AGENT_BUILD_FAILED:
            raise RuntimeError(AGENT_BUILD_FAILED)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(AGENT_BIN)],
            env={**os.environ, **env, "PORT": str(self.port), "HOST": "127.0.0.1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                out = self.output()
                self.stop()
                raise RuntimeError(f"the agent did not start: {out}")
            time.sleep(0.05)

    def output(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stdout is not None
        return self.process.stdout.read().decode(errors="replace")

    def stop(self) -> Optional[int]:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
