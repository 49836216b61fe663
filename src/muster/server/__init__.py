"""The server side: the replicated log, blocking queries and leader-only loops."""
