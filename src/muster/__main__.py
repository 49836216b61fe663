"""``python -m muster``: the same as the ``muster`` command."""

from .cli import main

raise SystemExit(main())
