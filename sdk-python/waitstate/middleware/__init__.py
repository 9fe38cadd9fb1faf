"""Framework integrations: ``fastapi``, ``flask``, ``django``, and plain ``asgi`` / ``wsgi``.

Each imports its framework only when imported itself; the SDK keeps zero
runtime dependencies. Every integration gates each request (tag and weight
from headers by default), answers a denial with 429, ``Retry-After`` and
``{"error":{"code":"RATE_LIMITED","message","reason"}}`` (the body of the
Node middlewares), and reports each finished request's latency, plus an error
when it ends in a 5xx.
"""
