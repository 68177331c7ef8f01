"""Webhook ingress: verify, parse, filter, route, record once, enqueue, answer in milliseconds.

- ``ingress.webhook_router``: the FastAPI router serving ``POST /webhooks/github``.
- ``pipeline.DeliveryProcessor``: everything after the signature check (shared with replay).
- ``handlers``: the routes (``@on("issues.labeled", ...)``) and the jobs each one asks for.
- ``replay.replay``: re-run a recorded delivery or a payload file through the same path.

Nothing here calls GitHub or the LLM: handlers only decide which jobs the workers should run.
"""
