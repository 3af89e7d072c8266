"""History charts drawn as inline SVG at publish time: no script, no image files, printable.

SVG text scales with the drawing, so one drawing cannot be readable both on a phone and on a wide
screen. Each chart is therefore drawn twice, in a wide and a narrow ``Layout`` whose text is at
least 12 CSS pixels at the widths the stylesheet shows it at (``.chart-wide`` above 44rem,
``.chart-narrow`` below). Each ``<svg role="img">`` carries its text alternative in ``<title>`` and
``<desc>``; the page prints the same numbers in a table beside it. The legend is HTML below the
drawings, so it wraps like text and never overlaps. Series differ by dash pattern, line width and
marker shape and size as well as colour, so they stay apart in greyscale print, for colour-blind
readers, and where two series have the same value (the larger marker stays visible around the
smaller one, and the legend says so in words). Values are exact ``Fraction`` s; only pixel
coordinates are rounded (to a tenth of a pixel).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from markupsafe import Markup, escape

MAX_TICKS = 5
"""At most this many intervals on the value axis."""

CHAR_WIDTH_EM = Fraction(62, 100)
"""A generous average advance of one character of the site's sans-serif, in ems, used to leave
room for the value labels (their length is known, their rendered width is not)."""


@dataclass(frozen=True)
class Layout:
    """One drawing size: its coordinate box, its text size, and how many x labels fit."""

    name: str
    width_px: int
    height_px: int
    font_px: int
    right_px: int
    """Room kept right of the plot, so the last x label is not cut off."""
    top_px: int
    bottom_px: int
    """Room below the plot for the two-line x labels."""


WIDE = Layout("wide", width_px=720, height_px=300, font_px=13, right_px=48, top_px=22, bottom_px=52)
"""Shown from 44rem up: 720 units drawn at 704 to 800 CSS px, so 13-unit text is 12.7 px or more."""
NARROW = Layout(
    "narrow", width_px=340, height_px=260, font_px=13, right_px=34, top_px=22, bottom_px=52
)
"""Shown below 44rem: 340 units drawn at 320 CSS px (a 360 px phone) or more: text 12.2 px or more."""
LAYOUTS = (WIDE, NARROW)

STYLES = (
    ("#1f4e79", "", Decimal("3.5"), 0, Decimal("6.5")),
    ("#b35900", "8 5", Decimal("2.5"), 1, Decimal("4")),
    ("#2e7d32", "2 4", Decimal("2.5"), 2, Decimal("5")),
    ("#6a1b9a", "9 3 2 3", Decimal("2.5"), 3, Decimal("5")),
)
"""(colour, dash pattern, line width, marker shape, marker radius) per series, cycled. The first
series is the widest line with the largest marker, so a later series drawn on top of it at the
same value leaves it visible around the edges. Colours keep a 4.5:1 contrast on white."""


REFERENCE_COLOUR = "#a61b1b"
"""The dashed level line (full coverage), named in the legend rather than on the drawing, where a
label could lie on a series."""


@dataclass(frozen=True)
class Series:
    """One line: its legend label, a value (or no value) at every x position, and a note the
    legend prints after the label (e.g. that it coincides with another series)."""

    label: str
    values: tuple[Fraction | None, ...]
    note: str = ""


@dataclass(frozen=True)
class Chart:
    """A line chart over attestations; ``reference`` draws a dashed level (e.g. 100 %).

    ``x_labels`` are one per position, each one or two lines separated by a newline
    (``"no. 3\\n2026-05-01"``).
    """

    chart_id: str
    title: str
    description: str
    x_labels: tuple[str, ...]
    series: tuple[Series, ...]
    y_format: Callable[[Fraction], str]
    reference: Fraction | None = None
    reference_label: str = ""
    tick_format: Callable[[Fraction], str] | None = None
    """How the value axis writes its round levels (``y_format`` if not given)."""


def _px(value: Fraction | Decimal | int) -> str:
    """A pixel coordinate with one decimal (rendering precision, not a measured quantity)."""
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    return str(Decimal(value).quantize(Decimal("0.1")))


def nice_step(top: Fraction) -> Fraction:
    """The smallest 1, 2 or 5 times a power of ten that covers ``top`` in ``MAX_TICKS`` steps."""
    target = top / MAX_TICKS if top > 0 else Fraction(1, MAX_TICKS)
    power = Fraction(1)
    while power > target:
        power /= 10
    while power * 10 <= target:
        power *= 10
    return next(m * power for m in (1, 2, 5, 10) if m * power >= target)


def text_width_px(text: str, font_px: int) -> Fraction:
    """A safe estimate of how wide ``text`` renders at ``font_px``."""
    return len(text) * font_px * CHAR_WIDTH_EM


def label_positions(labels: tuple[str, ...], plot_px: int, font_px: int) -> tuple[int, ...]:
    """Which x labels to print so neighbours never overlap: evenly spaced, always the first
    and the last (the newest attestation is the one a reader looks for)."""
    count = len(labels)
    if count <= 1:
        return tuple(range(count))
    widest = max(text_width_px(line, font_px) for label in labels for line in label.split("\n"))
    room = int(plot_px // (widest + font_px)) + 1
    if room >= count:
        return tuple(range(count))
    room = max(room, 2)
    step = -(-(count - 1) // (room - 1))
    chosen = list(range(0, count - 1, step))
    if (count - 1) - chosen[-1] < step:
        chosen[-1] = count - 1
    else:
        chosen.append(count - 1)
    return tuple(chosen)


def _marker(shape: int, radius: Decimal, x: Decimal, y: Decimal, colour: str, tip: str) -> str:
    """A point marker: circle, square, triangle or diamond by series."""
    title = f"<title>{escape(tip)}</title>" if tip else ""
    r = radius
    if shape == 0:
        return f'<circle cx="{x}" cy="{y}" r="{r}" fill="{colour}">{title}</circle>'
    if shape == 1:
        return (
            f'<rect x="{x - r}" y="{y - r}" width="{2 * r}" height="{2 * r}" '
            f'fill="{colour}">{title}</rect>'
        )
    if shape == 2:
        points = f"{x},{y - r} {x + r},{y + r} {x - r},{y + r}"
    else:
        points = f"{x},{y - r} {x + r},{y} {x},{y + r} {x - r},{y}"
    return f'<polygon points="{points}" fill="{colour}">{title}</polygon>'


def _svg(chart: Chart, layout: Layout) -> str:
    values = [v for series in chart.series for v in series.values if v is not None]
    top = max([*values, chart.reference or Fraction(0), Fraction(0)])
    step = nice_step(top)
    intervals = max(1, -(-top // step))
    y_max = step * intervals
    font = layout.font_px
    levels = [step * tick for tick in range(int(intervals) + 1)]
    tick_text = chart.tick_format or chart.y_format
    widest_tick = max(text_width_px(tick_text(level), font) for level in levels)
    plot_left = int(widest_tick) + 14
    plot_right = layout.width_px - layout.right_px
    plot_top = layout.top_px
    plot_bottom = layout.height_px - layout.bottom_px
    height = plot_bottom - plot_top
    span = plot_right - plot_left
    count = len(chart.x_labels)

    def y(value: Fraction) -> Fraction:
        return plot_bottom - Fraction(height) * value / y_max

    def x(position: int) -> Fraction:
        if count == 1:
            return Fraction(plot_left + span // 2)
        return plot_left + Fraction(span * position, count - 1)

    suffix = "" if layout is WIDE else f"-{layout.name}"
    chart_id = f"{chart.chart_id}{suffix}"
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{layout.name}" '
        f'viewBox="0 0 {layout.width_px} {layout.height_px}" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" id="{chart_id}" font-size="{font}">',
        f'<title id="{title_id}">{escape(chart.title)}</title>',
        f'<desc id="{desc_id}">{escape(chart.description)}</desc>',
        f'<rect x="0" y="0" width="{layout.width_px}" height="{layout.height_px}" fill="#ffffff"/>',
    ]
    for level in levels:
        ty = _px(y(level))
        parts.append(
            f'<line x1="{plot_left}" x2="{plot_right}" y1="{ty}" y2="{ty}" '
            f'stroke="#d0d4da" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{plot_left - 8}" y="{ty}" text-anchor="end" dominant-baseline="middle" '
            f'class="tick">{escape(tick_text(level))}</text>'
        )
    labelled = set(label_positions(chart.x_labels, span, font))
    for position, label in enumerate(chart.x_labels):
        tx = _px(x(position))
        parts.append(
            f'<line x1="{tx}" x2="{tx}" y1="{plot_bottom}" y2="{plot_bottom + 5}" stroke="#5f6b7a"/>'
        )
        if position not in labelled:
            continue
        lines = label.split("\n")
        half = max(text_width_px(line, font) for line in lines) / 2
        anchor = "middle"
        if count > 1 and position == 0 and half > x(position):
            anchor = "start"
        elif count > 1 and position == count - 1 and half > layout.width_px - x(position):
            anchor = "end"
        spans = "".join(
            f'<tspan x="{tx}" dy="{0 if i == 0 else Decimal(font) * Decimal("1.25")}">'
            f"{escape(line)}</tspan>"
            for i, line in enumerate(lines)
        )
        parts.append(
            f'<text x="{tx}" y="{plot_bottom + 8 + font}" text-anchor="{anchor}" class="tick">'
            f"{spans}</text>"
        )
    parts.append(
        f'<line x1="{plot_left}" x2="{plot_right}" y1="{plot_bottom}" '
        f'y2="{plot_bottom}" stroke="#5f6b7a" stroke-width="1.5"/>'
    )
    if chart.reference is not None:
        ry = _px(y(chart.reference))
        parts.append(
            f'<line x1="{plot_left}" x2="{plot_right}" y1="{ry}" y2="{ry}" '
            f'stroke="{REFERENCE_COLOUR}" stroke-width="1.5" stroke-dasharray="4 4"/>'
        )
    for index, series in enumerate(chart.series):
        colour, dashes, width, shape, radius = STYLES[index % len(STYLES)]
        points = [
            (Decimal(_px(x(position))), Decimal(_px(y(value))), value)
            for position, value in enumerate(series.values)
            if value is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{px},{py}" for px, py, _ in points)
            dash = f' stroke-dasharray="{dashes}"' if dashes else ""
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" '
                f'stroke-width="{width}"{dash}/>'
            )
        for px, py, value in points:
            tip = f"{series.label}: {chart.y_format(value)}"
            parts.append(_marker(shape, radius, px, py, colour, tip))
    parts.append("</svg>")
    return "".join(parts)


def _legend(chart: Chart) -> str:
    """The legend as an HTML list, each entry with a small drawing of its line and marker."""
    items = []
    for index, series in enumerate(chart.series):
        colour, dashes, width, shape, radius = STYLES[index % len(STYLES)]
        dash = f' stroke-dasharray="{dashes}"' if dashes else ""
        swatch = (
            '<svg class="swatch" viewBox="0 0 44 16" width="44" height="16" aria-hidden="true" '
            'focusable="false">'
            f'<line x1="2" x2="42" y1="8" y2="8" stroke="{colour}" stroke-width="{width}"{dash}/>'
            f"{_marker(shape, radius, Decimal(22), Decimal(8), colour, '')}</svg>"
        )
        note = f' <span class="legend-note">{escape(series.note)}</span>' if series.note else ""
        items.append(f"<li>{swatch}<span>{escape(series.label)}</span>{note}</li>")
    if chart.reference is not None:
        swatch = (
            '<svg class="swatch" viewBox="0 0 44 16" width="44" height="16" aria-hidden="true" '
            f'focusable="false"><line x1="2" x2="42" y1="8" y2="8" stroke="{REFERENCE_COLOUR}" '
            'stroke-width="1.5" stroke-dasharray="4 4"/></svg>'
        )
        items.append(f"<li>{swatch}<span>{escape(chart.reference_label)}</span></li>")
    return f'<ul class="legend" id="{chart.chart_id}-legend">{"".join(items)}</ul>'


def render(chart: Chart) -> Markup:
    """The chart as inline SVG in every layout, followed by its HTML legend."""
    drawings = "".join(_svg(chart, layout) for layout in LAYOUTS)
    return Markup(drawings + _legend(chart))  # noqa: S704 - every text above went through escape()
