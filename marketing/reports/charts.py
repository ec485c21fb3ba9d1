"""Charts as inline SVG, drawn on the server: no JavaScript, readable at a glance.

Each chart has a title, axis labels and a ``<desc>`` saying what it shows; ``role="img"``
with ``aria-labelledby`` lets a screen reader announce it. The numbers themselves are in a
table next to each chart (the templates), which is also what the CSV holds. Colours are
the Okabe-Ito palette, told apart with colour blindness too; lines also differ in dash.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000", "#F0E442")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 78, 220, 36, 48
# Rough width of a character at 12 px, to keep labels from overlapping or running off.
CHAR = 6.8
# Characters of a legend entry (11 px) that fit right of the plot.
LEGEND_CHARS = 30
_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # what is written at the end of the bar
    color: str = PALETTE[0]


@dataclass(frozen=True)
class Rule:
    """A vertical reference line across a bar chart, e.g. a limit."""

    value: float
    label: str
    color: str = "#D55E00"


def nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5, 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _number(value: float, percent: bool) -> str:
    if percent:
        return f"{value:.2%}" if value < 0.1 else f"{value:.0%}"
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:,.1f}"


def _open(title: str, desc: str, height: int) -> tuple[str, list[str]]:
    ident = f"chart{next(_ids)}"
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="report-chart" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="{ident}-t {ident}-d" '
        'font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>',
        f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>',
        f'<text x="{LEFT}" y="20" font-size="15" font-weight="bold" fill="#222">{escape(title)}</text>',
    ]
    return ident, head


def line_chart(
    *,
    title: str,
    desc: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    x_title: str,
    y_title: str,
    percent: bool = False,
) -> SafeString:
    """Lines over time, one per series, with a legend at the right."""
    _ident, out = _open(title, desc, HEIGHT)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for s in series for v in s.values if v is not None]
    top = nice_max(max(values, default=0))
    n = max(len(x_labels), 1)

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * v / top

    for tick in range(5):
        value = top * tick / 4
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" fill="#444">'
            f"{_number(value, percent)}</text>"
        )
    widest = max((len(label) for label in x_labels), default=1) * CHAR + 16
    every = max(1, math.ceil(n / max(int(plot_w // widest), 1)))
    for i, label in enumerate(x_labels):
        if i % every == 0 or i == n - 1:
            out.append(
                f'<text x="{x(i):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" fill="#444">'
                f"{escape(label)}</text>"
            )
    out.append(
        f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#444"/>'
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle" fill="#222">'
        f"{escape(x_title)}</text>"
        f'<text transform="translate(14 {TOP + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'fill="#222">{escape(y_title)}</text>'
    )
    for k, s in enumerate(series):
        color, dash = PALETTE[k % len(PALETTE)], DASHES[k % len(DASHES)]
        points = [f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values) if v is not None]
        style = f' stroke-dasharray="{dash}"' if dash else ""
        if len(points) == 1:
            cx, cy = points[0].split(",")
            out.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
        elif points:
            path = " ".join(points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{style}/>')
        ly = TOP + 8 + 18 * k
        last = next((v for v in reversed(s.values) if v is not None), None)
        out.append(
            f'<line x1="{WIDTH - RIGHT + 10}" x2="{WIDTH - RIGHT + 30}" y1="{ly}" y2="{ly}" '
            f'stroke="{color}" stroke-width="3"{style}/>'
            f'<text x="{WIDTH - RIGHT + 34}" y="{ly + 4}" font-size="11" fill="#222">'
            f"<title>{escape(s.name)}</title>{escape(_legend(s.name, last, percent))}</text>"
        )
    if not values:
        out.append(
            f'<text x="{LEFT + plot_w / 2:.0f}" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" '
            'fill="#666">No data yet</text>'
        )
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - every text above is escaped


def bar_chart(
    *,
    title: str,
    desc: str,
    bars: Sequence[Bar],
    x_title: str,
    rules: Sequence[Rule] = (),
    percent: bool = False,
) -> SafeString:
    """Horizontal bars, one per row, with optional vertical reference lines (limits)."""
    label_w, row_h = 200, 26
    top_y = TOP + (18 if rules else 0)  # room for the rules' labels under the title
    height = top_y + BOTTOM + row_h * max(len(bars), 1)
    _ident, out = _open(title, desc, height)
    plot_w = WIDTH - label_w - 110
    top = nice_max(max([b.value for b in bars] + [r.value * 1.2 for r in rules], default=0))

    def x(v: float) -> float:
        return label_w + plot_w * v / top

    numbers = []  # drawn last, over the rules: a limit line must never strike through a value
    for i, bar in enumerate(bars):
        y, width = top_y + row_h * i, max(x(bar.value) - label_w, 0)
        out.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" fill="#222">'
            f"{escape(bar.label[:30])}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{width:.1f}" height="{row_h - 8}" fill="{bar.color}"/>'
        )
        # The number after the bar, or inside its end when it would run off the chart.
        if x(bar.value) + 6 + len(bar.text) * CHAR <= WIDTH:
            numbers.append(
                f'<text x="{x(bar.value) + 6:.1f}" y="{y + 17}" fill="#222" paint-order="stroke" '
                f'stroke="#fff" stroke-width="4">{escape(bar.text)}</text>'
            )
        else:
            numbers.append(
                f'<text x="{x(bar.value) - 6:.1f}" y="{y + 17}" text-anchor="end" fill="#fff" '
                f'font-weight="bold">{escape(bar.text)}</text>'
            )
    bottom = top_y + row_h * max(len(bars), 1)
    out.append(
        f'<line x1="{label_w}" x2="{label_w}" y1="{top_y}" y2="{bottom}" stroke="#444"/>'
        f'<text x="{label_w}" y="{bottom + 16}" text-anchor="middle" fill="#444">0</text>'
        f'<text x="{x(top):.1f}" y="{bottom + 16}" text-anchor="middle" fill="#444">'
        f"{_number(top, percent)}</text>"
        f'<text x="{label_w + plot_w / 2:.0f}" y="{height - 8}" text-anchor="middle" fill="#222">'
        f"{escape(x_title)}</text>"
    )
    for rule in rules:
        out.append(
            f'<line x1="{x(rule.value):.1f}" x2="{x(rule.value):.1f}" y1="{top_y - 4}" y2="{bottom}" '
            f'stroke="{rule.color}" stroke-width="2" stroke-dasharray="5 3"/>'
            f'<text x="{x(rule.value) + 4:.1f}" y="{top_y - 8}" fill="{rule.color}">'
            f"{escape(rule.label)}</text>"
        )
    out.extend(numbers)
    if not bars:
        out.append(f'<text x="{label_w + 8}" y="{top_y + 17}" fill="#666">No data yet</text>')
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - every text above is escaped


def _legend(name: str, last: float | None, percent: bool) -> str:
    """The series' name and latest value in the legend's width: the name gives way, never the value."""
    value = "" if last is None else f": {_number(last, percent)}"
    room = LEGEND_CHARS - len(value)
    return (name if len(name) <= room else name[: max(room - 1, 1)] + "…") + value
