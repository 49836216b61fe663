"""What an operator uses to see what the agent is doing: the live log stream
(``/v1/agent/monitor``), metrics with Consul's names (``/v1/agent/metrics``) and the audit log.

Every module here is cheap on the hot path by construction: a log line costs one deque append
per live subscriber, a metric one dict lookup and an addition, an audit record one line written
to a buffered file.  None of them can block the code that reports to it.
"""
