"""WaitState for Python: an in-process gate(tag, weight) driven by your WaitState control plane.

>>> from waitstate import WaitstateClient, WaitstateConfig
>>> client = WaitstateClient(WaitstateConfig(publish_key=..., secret_key=..., base_url="http://127.0.0.1:8787"))
>>> client.gate("search", 1).allowed
True
"""
from ._client import Timer, WaitstateClient
from ._config import WaitstateConfig
from ._errors import WaitstateError
from ._result import GateResult, Reason

__all__ = ["WaitstateClient", "WaitstateConfig", "WaitstateError", "GateResult", "Reason", "Timer"]
__version__ = "0.1.0"
