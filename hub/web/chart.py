"""A horizontal stacked bar chart drawn as inline SVG on the server: no script, no chart
library. The geometry is decided here; the template only draws it, and the page shows the same
numbers as a table. Colours come from the design tokens through CSS classes (console.css), as
the Content-Security-Policy allows no inline style."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

LABEL_WIDTH = 110  # the flow's name, left of its bar
BAR_AREA = 330  # the longest bar
TOTAL_WIDTH = 60  # the total, right of the bar
ROW = 26
BAR_HEIGHT = 18


@dataclass(frozen=True)
class Segment:
    series: str  # an outcome: its CSS class is console-chart__bar--<series>
    x: float
    width: float
    count: int


@dataclass(frozen=True)
class Bar:
    label: str
    y: int  # top of the bar
    text_y: int  # baseline of its label and total
    total: int
    counts: dict[str, int]  # per series, in series order, zeros included
    segments: list[Segment]


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    label_width: int
    total_x: float
    bar_height: int
    bars: list[Bar]


def stacked_bars(rows: Mapping[str, Mapping[str, int]], series: Sequence[str]) -> Chart:
    """One bar per row, its segments in `series` order, all scaled to the largest total (a bar
    with any count at all is at least one pixel wide per non-zero segment)."""
    largest = max((sum(counts.get(s, 0) for s in series) for counts in rows.values()), default=0)
    scale = BAR_AREA / largest if largest else 0.0
    bars: list[Bar] = []
    for i, (label, counts) in enumerate(rows.items()):
        x = float(LABEL_WIDTH)
        segments: list[Segment] = []
        for name in series:
            n = counts.get(name, 0)
            if n:
                width = max(n * scale, 1.0)
                segments.append(Segment(name, round(x, 2), round(width, 2), n))
                x += width
        top = i * ROW + (ROW - BAR_HEIGHT) // 2
        in_order = {s: counts.get(s, 0) for s in series}
        bars.append(Bar(label, top, top + BAR_HEIGHT - 4, sum(in_order.values()), in_order, segments))
    return Chart(
        width=LABEL_WIDTH + BAR_AREA + TOTAL_WIDTH,
        height=max(len(bars), 1) * ROW,
        label_width=LABEL_WIDTH,
        total_x=LABEL_WIDTH + BAR_AREA + 6,
        bar_height=BAR_HEIGHT,
        bars=bars,
    )
