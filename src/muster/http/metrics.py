"""``GET /v1/agent/metrics``: the agent's metrics, as go-metrics' JSON or in Prometheus format.

JSON (default): go-metrics' in-memory sink display (``Timestamp``, ``Gauges``, ``Points``,
``Counters``, ``Samples``) of the last finished 10-second interval.  ``?format=prometheus``, or
an ``Accept`` naming OpenMetrics (or ``text/plain; version=0.4.0``, as Consul checks), gives the
Prometheus view; it is refused with Consul's 415 text while
``telemetry.prometheus_retention_time`` is not positive.  Live gauges (state sizes, runtime) are
sampled just before answering, so a fresh agent shows them at once.
"""

from __future__ import annotations

from collections.abc import Callable

from ..telemetry.metrics import Metrics
from ..telemetry.prometheus import TEXT_CONTENT_TYPE, render_openmetrics, render_text
from ..telemetry.runtime import Collector
from .app import Route
from .request import Request, Response, json_response, text_response

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


def routes(metrics: Metrics, collector: Collector, retention: Callable[[], float]) -> list[Route]:
    async def agent_metrics(req: Request) -> Response:
        accept = req.headers.get("accept", "")
        openmetrics = "application/openmetrics-text" in accept.lower()
        if req.get("format") == "prometheus" or _accepts_openmetrics(accept):
            if retention() < 1.0:
                return text_response(415, PROM_DISABLED)
            collector.collect()
            if openmetrics:
                body, ctype = render_openmetrics(metrics)
                return Response(200, body, ctype)
            return Response(200, render_text(metrics), TEXT_CONTENT_TYPE)
        collector.collect()
        return json_response(req, metrics.display())

    return [Route("/v1/agent/metrics", ("GET",), agent_metrics)]
