"""What an operator uses to see what the agent is doing: the live log stream
(``/v1/agent/monitor``), metrics with Consul's names (``/v1/agent/metrics``) and the audit log.

Every module here is cheap on the hot path by construction: a log line costs one deque append
per live subscriber, a metric (through a ``Series`` held by its call site) one list append, an
audit record one JSON line written and flushed (write requests only, when the audit log is on).
None of them can block the code that reports to it.
"""
