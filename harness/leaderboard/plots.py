"""Plot geometry for the site's inline SVG: pixel coordinates and axis ticks, no drawing.

Each function maps data to a small frozen record; ``templates/_svg.html.j2`` draws it (so every
label is escaped by Jinja2's autoescape) and the stylesheet colours it for light and dark mode.
Ticks are "nice" numbers: a step of 1, 2 or 5 × 10^k giving at most ``count`` intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 640
LABEL_CHARS = 26
CHAR_WIDTH = 9.0  # a generous mean advance of a 14px sans-serif character, in viewBox units


@dataclass(frozen=True)
class Axis:
    """A linear map from the data range [lo, hi] to the pixel range [start, end]."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        return round(self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start), 2)


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Box:
    """The plotting area in pixels; ``left`` leaves room for labels."""

    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float


def nice_ticks(lo: float, hi: float, count: int = 6) -> tuple[list[float], float]:
    """Tick values covering [lo, hi] with a step of 1, 2 or 5 × 10^k, and that step."""
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks = []
    value = first
    while value < hi + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks, step


def _label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def _axis_ticks(values: list[float], step: float, axis: Axis) -> list[Tick]:
    return [Tick(axis(v), _label(v, step)) for v in values]


def short(label: str, limit: int = LABEL_CHARS) -> str:
    """``label`` cut to ``limit`` characters with an ellipsis."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


@dataclass(frozen=True)
class Interval:
    y: float
    label: str
    kind: str
    x: float
    x_low: float | None
    x_high: float | None
    text: str


@dataclass(frozen=True)
class IntervalPlot:
    """Dot-and-whisker plot: one row per loss, the mean and its 95 % bootstrap CI."""

    box: Box
    metric: str
    ticks: list[Tick]
    items: list[Interval]
    zero: float | None = None  # x of 0 on a forest plot (a plot of differences)


def interval_plot(metric: str, rows: Sequence[tuple[str, str, float, float | None, float | None]],
                  forest: bool = False) -> IntervalPlot:
    """``rows``: (label, kind, mean, ci_low, ci_high); the left margin fits the longest (shortened) label.
    A ``forest`` plot shows differences: its range includes 0, marked by a line, and values carry a sign."""
    row_h, top, axis_h = 28, 12, 34
    left = 24 + CHAR_WIDTH * max(len(short(label)) for label, *_ in rows)
    box = Box(WIDTH, top + row_h * len(rows) + axis_h, left, top, WIDTH - 20, top + row_h * len(rows))
    values = [v for _, _, mean, lo, hi in rows for v in (mean, lo, hi) if v is not None] + ([0.0] if forest else [])
    tick_values, step = nice_ticks(min(values), max(values))
    axis = Axis(tick_values[0], tick_values[-1], box.left, box.right)
    number = "{:+.4f}" if forest else "{:.4f}"
    items = [Interval(y=top + row_h * (i + 0.5), label=label, kind=kind, x=axis(mean),
                      x_low=None if lo is None else axis(lo), x_high=None if hi is None else axis(hi),
                      text=number.format(mean) + ("" if lo is None or hi is None
                                                  else f" [{number.format(lo)}, {number.format(hi)}]"))
             for i, (label, kind, mean, lo, hi) in enumerate(rows)]
    return IntervalPlot(box, metric, _axis_ticks(tick_values, step, axis), items, axis(0.0) if forest else None)


@dataclass(frozen=True)
class LinePlot:
    """A line through (x, y) points with both axes ticked."""

    box: Box
    points: list[tuple[float, float]]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    x_label: str
    y_label: str

    @property
    def polyline(self) -> str:
        return " ".join(f"{x},{y}" for x, y in self.points)


def line_plot(xs: Sequence[float], ys: Sequence[float], x_label: str, y_label: str) -> LinePlot:
    """Training curve geometry; ``xs`` and ``ys`` have the same non-zero length."""
    box = Box(WIDTH, 260, 60, 14, WIDTH - 20, 220)
    x_values, x_step = nice_ticks(min(xs), max(xs))
    y_values, y_step = nice_ticks(min(ys), max(ys))
    x_axis = Axis(x_values[0], x_values[-1], box.left, box.right)
    y_axis = Axis(y_values[0], y_values[-1], box.bottom, box.top)
    return LinePlot(box, [(x_axis(x), y_axis(y)) for x, y in zip(xs, ys)],
                    _axis_ticks(x_values, x_step, x_axis), _axis_ticks(y_values, y_step, y_axis),
                    x_label, y_label)


@dataclass(frozen=True)
class Series:
    name: str
    css: str
    path: str
    total: int


@dataclass(frozen=True)
class HistogramPlot:
    """Overlaid step histograms, each normalised to fractions of its own total."""

    box: Box
    series: list[Series]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    x_label: str


def histogram_plot(edges: Sequence[float], counts: dict[str, tuple[str, Sequence[int]]],
                   x_label: str = "score") -> HistogramPlot:
    """``counts``: name → (css class, one count per bin); ``edges`` has one more entry than bins."""
    box = Box(WIDTH, 260, 60, 14, WIDTH - 20, 220)
    fractions = {name: [c / max(1, sum(cs)) for c in cs] for name, (_, cs) in counts.items()}
    top = max((f for fs in fractions.values() for f in fs), default=0.0) or 1.0
    x_values, x_step = nice_ticks(edges[0], edges[-1])
    y_values, y_step = nice_ticks(0.0, top)
    x_axis = Axis(x_values[0], x_values[-1], box.left, box.right)
    y_axis = Axis(y_values[0], y_values[-1], box.bottom, box.top)
    series = []
    for name, (css, cs) in counts.items():
        d = [f"M{x_axis(edges[0])},{y_axis(0)}"]
        for i, f in enumerate(fractions[name]):
            d.append(f"L{x_axis(edges[i])},{y_axis(f)}L{x_axis(edges[i + 1])},{y_axis(f)}")
        d.append(f"L{x_axis(edges[-1])},{y_axis(0)}Z")
        series.append(Series(name, css, "".join(d), int(sum(cs))))
    return HistogramPlot(box, series, _axis_ticks(x_values, x_step, x_axis), _axis_ticks(y_values, y_step, y_axis),
                         x_label)
