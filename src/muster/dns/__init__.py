"""Consul's DNS interface (docs/compat/dns.md): ``names`` parses question names, ``answers`` builds
record sets from the store, ``wire`` parses queries and renders (cached) answers per query,
``server`` is the UDP/TCP listener with the answer cache, ``recursor`` forwards out-of-zone
questions."""
