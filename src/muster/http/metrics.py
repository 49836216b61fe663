"""``GET /v1/agent/metrics``: the agent's metrics, as go-metrics' JSON or in Prometheus format.

JSON (default): go-metrics' in-memory sink display (``Timestamp``, ``Gauges``, ``Points``,
``Counters``, ``Samples``) of the last finished 10-second interval.  ``?format=prometheus``, or
an ``Accept`` naming OpenMetrics (or ``text/plain; version=0.4.0``, as Consul checks), gives the
Prometheus view; while ``telemetry.prometheus_retention_time`` is not positive it answers as
Consul does in effect: 200, an empty body, the reason in ``X-Consul-Reason``.  Live gauges (state sizes, runtime) are
sampled just before answering, so a fresh agent shows them at once.
"""

from __future__ import annotations

from collections.abc import Callable

from ..telemetry.metrics import Metrics
from ..telemetry.prometheus import TEXT_CONTENT_TYPE, render_text
from ..telemetry.runtime import Collector
from .app import Route
from .common import Ctx
from .request import Request, Response, json_response

PROM_DISABLED = "Prometheus is not enabled since its retention time is not positive"


def _accepts_openmetrics(accept: str) -> bool:
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        mime = fields[0].lower()
        if mime == "application/openmetrics-text":
            return True
        if mime == "text/plain" and len(fields) > 1 and fields[1] == "version=0.4.0":
            return True
    return False


def routes(ctx: Ctx, metrics: Metrics, collector: Collector, retention: Callable[[], float]) -> list[Route]:
    node = ctx.services.server.ident.node_name

    async def agent_metrics(req: Request) -> Response:
        ctx.authorizer(req).require("agent", "read", node)
        accept = req.headers.get("accept", "")
        if req.get("format") == "prometheus" or _accepts_openmetrics(accept):
            if retention() < 1.0:
                # Consul raises a 415 CodeWithPayloadError with no payload, and its handler
                # returns before writing the status: the client sees 200, an empty body and the
                # reason in X-Consul-Reason (py-consul's own suite relies on this).
                return Response(200, b"", None, [("X-Consul-Reason", PROM_DISABLED)])
            collector.collect()
            # Consul's promhttp handler does not enable OpenMetrics: whatever the Accept header
            # offers, the answer is the classic text format (so counters keep Consul's names).
            return Response(200, render_text(metrics), TEXT_CONTENT_TYPE)
        collector.collect()
        return json_response(req, metrics.display())

    return [Route("/v1/agent/metrics", ("GET",), agent_metrics)]
