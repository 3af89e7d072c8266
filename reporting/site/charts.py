"""History charts drawn as inline SVG at publish time: no script, no image files, printable.

Each chart is an ``<svg role="img">`` whose ``<title>`` and ``<desc>`` carry its text alternative;
the page prints the same numbers in a table beside it. Series differ by dash pattern and marker
shape as well as colour, so they stay apart in greyscale print and for colour-blind readers.
Values are exact ``Fraction`` s; only pixel coordinates are rounded (to a tenth of a pixel).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from markupsafe import Markup, escape

WIDTH_PX = 720
HEIGHT_PX = 340
PLOT_LEFT_PX = 120
PLOT_RIGHT_PX = 650
PLOT_TOP_PX = 20
PLOT_BOTTOM_PX = 250
LEGEND_ROW_PX = 322
LEGEND_ITEM_WIDTH_PX = 170
MAX_TICKS = 5
"""At most this many intervals on the value axis."""

STYLES = (
    ("#1f4e79", ""),
    ("#b35900", "7 4"),
    ("#2e7d32", "2 4"),
    ("#6a1b9a", "9 3 2 3"),
)
"""(colour, dash pattern) per series, cycled; colours keep a 4.5:1 contrast on white."""


@dataclass(frozen=True)
class Series:
    """One line: its legend label and a value (or no value) at every x position."""

    label: str
    values: tuple[Fraction | None, ...]


@dataclass(frozen=True)
class Chart:
    """A line chart over attestations; ``reference`` draws a dashed level (e.g. 100 %)."""

    chart_id: str
    title: str
    description: str
    x_labels: tuple[str, ...]
    series: tuple[Series, ...]
    y_format: Callable[[Fraction], str]
    reference: Fraction | None = None
    reference_label: str = ""


def _px(value: Fraction) -> str:
    """A pixel coordinate with one decimal (rendering precision, not a measured quantity)."""
    return str((Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.1")))


def nice_step(top: Fraction) -> Fraction:
    """The smallest 1, 2 or 5 times a power of ten that covers ``top`` in ``MAX_TICKS`` steps."""
    target = top / MAX_TICKS if top > 0 else Fraction(1, MAX_TICKS)
    power = Fraction(1)
    while power > target:
        power /= 10
    while power * 10 <= target:
        power *= 10
    return next(m * power for m in (1, 2, 5, 10) if m * power >= target)


def _x(position: int, count: int) -> Fraction:
    span = PLOT_RIGHT_PX - PLOT_LEFT_PX
    if count == 1:
        return Fraction(PLOT_LEFT_PX + span // 2)
    return PLOT_LEFT_PX + Fraction(span * position, count - 1)


def _marker(shape: int, x: str, y: str, colour: str, tip: str) -> str:
    """A point marker; circle, square, triangle or diamond by series."""
    title = f"<title>{escape(tip)}</title>"
    if shape == 0:
        return f'<circle cx="{x}" cy="{y}" r="4.5" fill="{colour}">{title}</circle>'
    if shape == 1:
        return (
            f'<rect x="{Decimal(x) - 4}" y="{Decimal(y) - 4}" width="8" height="8" '
            f'fill="{colour}">{title}</rect>'
        )
    cx, cy = Decimal(x), Decimal(y)
    if shape == 2:
        points = f"{cx},{cy - 5} {cx + 5},{cy + 4} {cx - 5},{cy + 4}"
    else:
        points = f"{cx},{cy - 5} {cx + 5},{cy} {cx},{cy + 5} {cx - 5},{cy}"
    return f'<polygon points="{points}" fill="{colour}">{title}</polygon>'


def render(chart: Chart) -> Markup:
    """The chart as an inline SVG element."""
    values = [v for series in chart.series for v in series.values if v is not None]
    top = max([*values, chart.reference or Fraction(0), Fraction(0)])
    step = nice_step(top)
    intervals = max(1, -(-top // step))
    y_max = step * intervals
    height = PLOT_BOTTOM_PX - PLOT_TOP_PX

    def y(value: Fraction) -> Fraction:
        return PLOT_BOTTOM_PX - Fraction(height) * value / y_max

    title_id, desc_id = f"{chart.chart_id}-title", f"{chart.chart_id}-desc"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH_PX} {HEIGHT_PX}" '
        f'role="img" aria-labelledby="{title_id} {desc_id}" id="{chart.chart_id}">',
        f'<title id="{title_id}">{escape(chart.title)}</title>',
        f'<desc id="{desc_id}">{escape(chart.description)}</desc>',
        f'<rect x="0" y="0" width="{WIDTH_PX}" height="{HEIGHT_PX}" fill="#ffffff"/>',
    ]
    for tick in range(int(intervals) + 1):
        level = step * tick
        ty = _px(y(level))
        parts.append(
            f'<line x1="{PLOT_LEFT_PX}" x2="{PLOT_RIGHT_PX}" y1="{ty}" y2="{ty}" '
            f'stroke="#d0d4da" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{PLOT_LEFT_PX - 8}" y="{ty}" text-anchor="end" dominant-baseline="middle" '
            f'class="tick">{escape(chart.y_format(level))}</text>'
        )
    count = len(chart.x_labels)
    for position, label in enumerate(chart.x_labels):
        tx = _px(_x(position, count))
        parts.append(
            f'<line x1="{tx}" x2="{tx}" y1="{PLOT_BOTTOM_PX}" y2="{PLOT_BOTTOM_PX + 5}" stroke="#5f6b7a"/>'
        )
        parts.append(
            f'<text x="{tx}" y="{PLOT_BOTTOM_PX + 22}" text-anchor="middle" class="tick">'
            f"{escape(label)}</text>"
        )
    parts.append(
        f'<line x1="{PLOT_LEFT_PX}" x2="{PLOT_RIGHT_PX}" y1="{PLOT_BOTTOM_PX}" '
        f'y2="{PLOT_BOTTOM_PX}" stroke="#5f6b7a" stroke-width="1.5"/>'
    )
    if chart.reference is not None:
        ry = _px(y(chart.reference))
        parts.append(
            f'<line x1="{PLOT_LEFT_PX}" x2="{PLOT_RIGHT_PX}" y1="{ry}" y2="{ry}" '
            f'stroke="#a61b1b" stroke-width="1.5" stroke-dasharray="4 4"/>'
        )
        parts.append(
            f'<text x="{PLOT_LEFT_PX + 6}" y="{Decimal(ry) - 6}" text-anchor="start" class="reference">'
            f"{escape(chart.reference_label)}</text>"
        )
    for index, series in enumerate(chart.series):
        colour, dashes = STYLES[index % len(STYLES)]
        points = [
            (_px(_x(position, count)), _px(y(value)), value)
            for position, value in enumerate(series.values)
            if value is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{px},{py}" for px, py, _ in points)
            dash = f' stroke-dasharray="{dashes}"' if dashes else ""
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"{dash}/>'
            )
        for px, py, value in points:
            tip = f"{series.label}: {chart.y_format(value)}"
            parts.append(_marker(index % 4, px, py, colour, tip))
        lx = PLOT_LEFT_PX + index * LEGEND_ITEM_WIDTH_PX
        dash = f' stroke-dasharray="{dashes}"' if dashes else ""
        parts.append(
            f'<line x1="{lx}" x2="{lx + 30}" y1="{LEGEND_ROW_PX}" y2="{LEGEND_ROW_PX}" '
            f'stroke="{colour}" stroke-width="2.5"{dash}/>'
        )
        parts.append(_marker(index % 4, str(lx + 15), str(LEGEND_ROW_PX), colour, series.label))
        parts.append(
            f'<text x="{lx + 38}" y="{LEGEND_ROW_PX}" dominant-baseline="middle" class="legend">'
            f"{escape(series.label)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above went through escape()
