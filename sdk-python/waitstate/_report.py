"""Where background failures go when the application gives no on_error."""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Dict, Optional

from ._errors import WaitstateError

Reporter = Callable[[WaitstateError], None]


def stderr_reporter() -> Reporter:
    """A warning per error code at most once a minute (the other SDKs' default)."""
    last: Dict[str, float] = {}
    lock = threading.Lock()

    def report(error: WaitstateError) -> None:
        now = time.monotonic()
        with lock:
            if now - last.get(error.code, -1e18) < 60:
                return
            last[error.code] = now
        print(f"[waitstate] {error.code}: {error.message}", file=sys.stderr)

    return report


def safe_reporter(on_error: Optional[Reporter]) -> Reporter:
    """on_error, or the default; an on_error that raises cannot break the SDK's thread."""
    target = on_error if on_error is not None else stderr_reporter()

    def report(error: WaitstateError) -> None:
        try:
            target(error)
        except Exception:  # noqa: BLE001 -- the callback is the application's; its failure is not ours to raise
            pass

    return report
