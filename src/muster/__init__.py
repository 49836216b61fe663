"""Muster: a Consul-compatible service registry and KV store."""
__version__ = "0.1.0"
