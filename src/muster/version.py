"""The Consul version Muster reports: clients switch behaviour on it (docs/compat/catalog-health.md#the-reported-version)."""

VERSION = "1.22.1"
REVISION = "muster01"
BUILD = f"{VERSION}:{REVISION}"
