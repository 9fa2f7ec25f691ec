"""The overview's bar chart geometry (hub.web.chart): bars scaled to the largest total,
segments in series order side by side, an empty chart with no bars."""

from __future__ import annotations

from hub.web.chart import BAR_AREA, LABEL_WIDTH, stacked_bars


def test_bars_are_scaled_to_the_largest_total_and_stacked_in_series_order() -> None:
    chart = stacked_bars(
        {"ping": {"routed": 6, "rejected": 2}, "transfer": {"received": 1, "routed": 3}},
        ("routed", "rejected", "received"),
    )
    ping, transfer = chart.bars
    assert (ping.label, ping.total, ping.counts) == ("ping", 8, {"routed": 6, "rejected": 2, "received": 0})
    assert [(x.series, x.count) for x in ping.segments] == [("routed", 6), ("rejected", 2)]
    assert ping.segments[0].x == LABEL_WIDTH and ping.segments[0].width == BAR_AREA * 6 / 8
    assert ping.segments[1].x == LABEL_WIDTH + BAR_AREA * 6 / 8
    assert sum(x.width for x in ping.segments) == BAR_AREA  # the largest fills the area
    assert [x.series for x in transfer.segments] == ["routed", "received"]
    assert sum(x.width for x in transfer.segments) == BAR_AREA * 4 / 8
    assert transfer.y > ping.y and chart.height >= transfer.y + chart.bar_height


def test_a_tiny_count_still_shows_and_nothing_is_an_empty_chart() -> None:
    chart = stacked_bars({"a": {"routed": 10_000}, "b": {"rejected": 1}}, ("routed", "rejected"))
    assert chart.bars[1].segments[0].width == 1.0
    empty = stacked_bars({}, ("routed",))
    assert empty.bars == [] and empty.height > 0
