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
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote

from echossl.io import atomic_write_text

__all__ = ["Section", "render_report", "write_report", "fraction_label", "demo_title"]

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
p.note { font-size: .85em; color: #555; font-style: italic; }
section { border-top: 1px solid #eee; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.5em; }
td.verdict-holds { color: #176617; font-weight: 600; }
td.verdict-fails { color: #a31515; font-weight: 600; }
td.verdict-inconclusive { color: #8a6d00; }
"""


def fraction_label(value) -> str:
    """A labeled fraction as people write it: 0.125 -> "1/8", 0.1875 -> "3/16", 1.0 -> "all";
    anything that is not a small fraction (denominator above 64) as a percentage."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value >= 1.0:
        return "all"
    frac = Fraction(value).limit_denominator(64)
    if abs(float(frac) - value) < 1e-9 and frac.numerator > 0:
        return f"{frac.numerator}/{frac.denominator}"
    return f"{100 * value:.3g} %"


def demo_title(labeled_fraction) -> str:
    """The demo report's title at the fraction that actually ran (it used to say "1/8" whatever ran)."""
    return f"echossl demo: semi-supervised EF (Table IV at {fraction_label(labeled_fraction)} labels)"


@dataclass
class Section:
    """One part of a report, rendered in this order: heading, paragraphs, links, tables, figures, notes.

    Attributes:
        heading: ``<h2>`` text (``level`` 3 gives ``<h3>``, for a run inside a comparison).
        figures_first: draw the figures above the tables.
        paragraphs: plain text paragraphs.
        links: ``[(text, href)]``; hrefs are relative paths (quoted), never ``javascript:``.
        tables: ``[(caption, rows)]`` as in :func:`write_report`.
        figures: ``[(caption, png_bytes)]``.
        notes: small print (e.g. why a figure is missing).
    """

    heading: str
    paragraphs: list = field(default_factory=list)
    links: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    level: int = 2
    figures_first: bool = False  # figures before the tables (plots a reader looks at first)


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


def _table(caption: str, rows: list[dict], level: int = 2) -> str:
    columns: list = list(dict.fromkeys(key for row in rows for key in row))
    parts = [f"<h{level}>{html.escape(str(caption))}</h{level}>"]
    if not rows:
        parts.append("<p><em>no rows</em></p>")
        return "\n".join(parts)
    parts.append("<table>")
    parts.append("<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>")
    for row in rows:
        cells = "".join(_td(c, row.get(c)) for c in columns)
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</table>")
    return "\n".join(parts)


def _td(column, value) -> str:
    text = _cell(value)
    if str(column).lower() == "verdict" and text in ("holds", "fails", "inconclusive"):
        return f'<td class="verdict-{text}">{html.escape(text)}</td>'
    return f"<td>{html.escape(text)}</td>"


def _href(target: str) -> str:
    """A relative link target, percent-quoted; anything with a scheme is refused (shown as text)."""
    target = str(target).replace("\\", "/")
    if ":" in target.split("/", 1)[0]:
        raise ValueError(f"report links are relative paths, not {target!r}")
    return html.escape(quote(target, safe="/._-~"), quote=True)


def _section(sec: Section) -> str:
    level = 3 if sec.level == 3 else 2
    sub = min(level + 1, 4)
    out = ["<section>", f"<h{level}>{html.escape(str(sec.heading))}</h{level}>"]
    out += [f"<p>{html.escape(str(p))}</p>" for p in sec.paragraphs if str(p).strip()]
    if sec.links:
        out.append("<p>" + " · ".join(f'<a href="{_href(h)}">{html.escape(str(t))}</a>' for t, h in sec.links) + "</p>")
    tables = [_table(caption, list(rows), sub) for caption, rows in sec.tables]
    figures = [_figure(caption, png) for caption, png in sec.figures]
    out += figures + tables if sec.figures_first else tables + figures
    out += [f'<p class="note">{html.escape(str(n))}</p>' for n in sec.notes if str(n).strip()]
    out.append("</section>")
    return "\n".join(out)


def _figure(caption: str, png: bytes) -> str:
    data = base64.b64encode(bytes(png)).decode("ascii")
    cap = html.escape(str(caption))
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{cap}">'
        f"<figcaption>{cap}</figcaption></figure>"
    )


def render_report(title: str, *, summary: str = "", tables=(), figures=(), sections=()) -> str:
    """The HTML text that :func:`write_report` writes (``sections`` after the figures)."""
    body = [f"<h1>{html.escape(str(title))}</h1>"]
    for paragraph in str(summary or "").strip().split("\n\n"):
        if paragraph.strip():
            body.append(f'<p class="summary">{html.escape(paragraph.strip())}</p>')
    for caption, rows in tables or ():
        body.append(_table(caption, list(rows)))
    if figures:
        body.append("<h2>Figures</h2>")
        body.extend(_figure(caption, png) for caption, png in figures)
    body.extend(_section(sec) for sec in sections or ())
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
    sections: list[Section] | None = None,
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
        sections: further :class:`Section` blocks (what ``echossl report`` writes).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    text = render_report(title, summary=summary, tables=tables or (), figures=figures or (),
                         sections=sections or ())
    atomic_write_text(path, text)
    return path
