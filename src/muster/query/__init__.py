"""Prepared queries (``/v1/query``): definitions and validation (:mod:`.definition`), templates
(:mod:`.template`), and execution with failover ordering (:mod:`.execute`)."""
