"""A report as a list of blocks, rendered twice: markdown (PNG files beside it) and one self-contained HTML page.

Blocks are headings, paragraphs, tables and figures; the renderers escape text, so values from a results file
(benchmark names, code sites) cannot break the page.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[object]]


@dataclass(frozen=True)
class Figure:
    """A PNG written beside the markdown; `caption` says how to read it."""

    file: str
    title: str
    caption: str


Block = Heading | Paragraph | Table | Figure
TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def time_unit(values: Sequence[float]) -> tuple[float, str]:
    """The unit (scale in seconds, name) that shows these times with the fewest zeros."""
    top = max(values) if len(values) else 1.0
    return next(((s, u) for s, u in TIME_UNITS if top >= s), TIME_UNITS[-1])


def fmt_time(seconds: float) -> str:
    scale, unit = time_unit([abs(seconds)])
    return f"{seconds / scale:.3g} {unit}"


def cell(value: object) -> str:
    """A table cell: floats to 4 significant digits, None/NaN as a dash."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(cell(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(headers), "|" + "---|" * len(headers), *(line(r) for r in rows)])


def to_markdown(blocks: Sequence[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Table):
            parts.append(markdown_table(block.headers, block.rows))
        else:
            parts.append(f"![{block.title}]({block.file})\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; } figcaption { color: #555; font-style: italic; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


def _inline(text: str) -> str:
    """Escape text, keeping markdown `code` spans and **bold** as HTML."""
    out = html.escape(text)
    pieces = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
    pieces = out.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(pieces))


def _html_block(block: Block, images: Path) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{_inline(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{_inline(h)}</th>" for h in block.headers)
        body = "".join("<tr>" + "".join(f"<td>{_inline(cell(c))}</td>" for c in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    data = base64.b64encode((images / block.file).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(block.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_inline(block.caption)}</figcaption></figure>"
    )


def to_html(blocks: Sequence[Block], *, title: str, images: Path) -> str:
    """One page with every figure embedded as a base64 PNG read from `images`: it opens from disk, offline."""
    body = "\n".join(_html_block(block, images) for block in blocks)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
