"""A self-contained HTML report: summary text, tables and PNG figures inline.

Every string that comes from data (file names, method names, captions, cell
values) goes through :func:`html.escape`, so a FileName such as
``<script>alert(1)</script>`` shows as text instead of running. Figures are embedded
as base64 ``data:`` URIs, so the single file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from echossl.io import atomic_write_text

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
figure { display: inline-block; margin: .5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
p.summary { white-space: pre-wrap; }
"""


def _cell(value) -> str:
    """Text of one table cell (escaped later): floats to 4 significant digits."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalar
        value = value.item()
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


def _table(caption: str, rows: list[dict]) -> str:
    columns: list = list(dict.fromkeys(key for row in rows for key in row))
    parts = [f"<h2>{html.escape(str(caption))}</h2>"]
    if not rows:
        parts.append("<p><em>no rows</em></p>")
        return "\n".join(parts)
    parts.append("<table>")
    parts.append("<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>")
    for row in rows:
        cells = "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns)
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</table>")
    return "\n".join(parts)


def _figure(caption: str, png: bytes) -> str:
    data = base64.b64encode(bytes(png)).decode("ascii")
    cap = html.escape(str(caption))
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{cap}">'
        f"<figcaption>{cap}</figcaption></figure>"
    )


def render_report(title: str, *, summary: str = "", tables=(), figures=()) -> str:
    """The HTML text that :func:`write_report` writes."""
    body = [f"<h1>{html.escape(str(title))}</h1>"]
    for paragraph in str(summary or "").strip().split("\n\n"):
        if paragraph.strip():
            body.append(f'<p class="summary">{html.escape(paragraph.strip())}</p>')
    for caption, rows in tables or ():
        body.append(_table(caption, list(rows)))
    if figures:
        body.append("<h2>Figures</h2>")
        body.extend(_figure(caption, png) for caption, png in figures)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(str(title))}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(
    path,
    title: str,
    *,
    summary: str = "",
    tables: list[tuple[str, list[dict]]] | None = None,
    figures: list[tuple[str, bytes]] | None = None,
) -> Path:
    """Write one self-contained HTML report, atomically.

    Args:
        path: output ``.html``.
        title: page title and heading.
        summary: plain text; blank lines separate paragraphs.
        tables: ``[(caption, rows)]`` with rows as dicts; the columns are the union
            of the rows' keys in first-seen order; floats are shown to 4 significant
            digits, ``[low, high]`` lists as such, None/NaN as empty cells.
        figures: ``[(caption, png_bytes)]``, e.g. from :mod:`echossl.evaluation.plots`.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    text = render_report(title, summary=summary, tables=tables or (), figures=figures or ())
    atomic_write_text(path, text)
    return path
