"""``python -m bench``: the same command line as ``qbench``."""

from .cli import main

raise SystemExit(main())
