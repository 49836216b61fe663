"""Service-mesh control plane state that is not the catalog: config entries, the discovery chain,
the built-in CA and intentions.  Pure modules (no I/O): the HTTP layer decodes with them and
the FSM stores what they produce."""
