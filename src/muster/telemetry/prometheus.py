"""The Prometheus exposition of ``Metrics`` (``/v1/agent/metrics?format=prometheus``).

Consul's Prometheus sink (client_golang) names counters exactly as their key, without the
``_total`` suffix that the Python client's text writer always adds to a counter family
(``consul_raft_apply``, not ``consul_raft_apply_total``; dashboards and alerts written for
Consul query the former).  So the classic text format (version 0.0.4) is written here, with
prometheus-client's own value formatting (``floatToGoString``: ``+Inf``, ``NaN``, Go's float
layout) and label escaping.  Like Consul's handler (promhttp without OpenMetrics enabled), the
text format is the answer even to a scraper that offers OpenMetrics: Prometheus itself offers it
first, and would otherwise store every counter under a ``_total`` name.
"""

from __future__ import annotations

from prometheus_client.utils import floatToGoString

from .metrics import Labels, Metrics

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _label_name(k: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in k)
    return "_" + out if out[:1].isdigit() else out


def _labels(lb: Labels) -> str:
    if not lb:
        return ""
    return "{" + ",".join(f'{_label_name(k)}="{_escape(v)}"' for k, v in sorted(lb)) + "}"


def render_text(metrics: Metrics) -> bytes:
    out: list[str] = []
    for name, kind, samples in metrics.prometheus_families():
        out.append(f"# HELP {name} {name}\n")
        out.append(f"# TYPE {name} {kind}\n")
        for sname, lb, value in samples:
            out.append(f"{sname}{_labels(lb)} {floatToGoString(value)}\n")
    return "".join(out).encode()
