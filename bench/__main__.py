"""``python -m bench``: the same command line as ``qbench``."""

from .cli import main

if __name__ == "__main__":  # seeding's worker processes re-import the main module: run only when executed
    raise SystemExit(main())
