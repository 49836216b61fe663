"""Runs every SWIM transcript in tests/gossip/testdata (``MUSTER_REWRITE=1`` to regenerate)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gossip_interaction import GossipEnv

from datadriven import run_file

TESTDATA = Path(__file__).parent / "testdata"
FILES = sorted(TESTDATA.glob("*.txt"))


def test_transcripts_exist() -> None:
    assert len(FILES) >= 3


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_transcript(path: Path) -> None:
    run_file(path, GossipEnv().handle)
