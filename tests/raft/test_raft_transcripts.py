"""Runs every transcript in tests/raft/testdata (``MUSTER_REWRITE=1`` to regenerate)."""

from __future__ import annotations

from pathlib import Path

import pytest
from raft_interaction import InteractionEnv

from datadriven import run_file

TESTDATA = Path(__file__).parent / "testdata"
FILES = sorted(TESTDATA.glob("*.txt"))


def test_transcripts_exist() -> None:
    assert len(FILES) >= 9


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_transcript(path: Path) -> None:
    env = InteractionEnv()
    run_file(path, env.handle)
