"""Make ``gossipnet``/``gossip_interaction`` (this folder) and ``datadriven`` (tests/) importable."""

import sys
from pathlib import Path

for _p in (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
