"""/metrics and /healthz: for Prometheus and load balancers, without a token, on their own address."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HEALTH_TIMEOUT = 3.0


def build(relay) -> Starlette:
    async def metrics(_request) -> Response:
        try:
            depth, oldest = await asyncio.wait_for(relay.queue.depth(), HEALTH_TIMEOUT)
            relay.metrics.queue_depth.set(depth)
            relay.metrics.queue_oldest.set((datetime.now(timezone.utc) - oldest).total_seconds() if oldest else 0)
        except Exception:  # the counters still say something; /healthz says the store is down
            pass
        return Response(relay.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request) -> Response:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                async with relay.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"status": "unhealthy", "store": f"not answering: {type(exc).__name__}"}, 503)
        return JSONResponse({"status": "ok", "store": "answering", "node": relay.node})

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])
