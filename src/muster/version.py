"""The Consul version Muster reports: clients switch behaviour on it (contract §2.13)."""

VERSION = "1.22.1"
REVISION = "muster01"
BUILD = f"{VERSION}:{REVISION}"
