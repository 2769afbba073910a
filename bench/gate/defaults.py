"""The gate's defaults, shared by the library (gate.py) and its command line (cli.py) without importing pandas."""

from __future__ import annotations

from pathlib import Path
from typing import Final

#: The committed baseline `qbench gate` and `qbench baseline update` use by default.
DEFAULT_BASELINE: Final = Path("reports/baseline/quick.json")
#: The gate's settings (every key documented in the file).
DEFAULT_CONFIG: Final = Path(__file__).with_name("gate.toml")
#: What a wall-time slowdown does to the verdict.
TIME_MODES: Final = ("fail", "report-only")
