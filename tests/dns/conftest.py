"""Fixtures for the DNS tests (helpers live in ``dnshelpers.py``)."""

from __future__ import annotations

import pytest
from dnshelpers import Catalog


@pytest.fixture
def cat() -> Catalog:
    return Catalog()
