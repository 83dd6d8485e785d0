"""The texts-per-day chart, drawn on the server as inline SVG (no script, no image file).

One bar per local day: its height is the number of texts sent that day, split into the part the
user marked wrong (red), marked right (green) and not judged yet (grey). Each bar's tooltip
spells the figures out, so the chart is readable without colour too.
"""

from __future__ import annotations

from typing import Sequence

from markupsafe import Markup, escape

from jeeves.reporting import DayAlerts

WIDTH, HEIGHT, AXIS = 640, 140, 18
COLOURS = {"wrong": "#c0392b", "right": "#27ae60", "unjudged": "#b8bec6"}


def texts_per_day_svg(days: Sequence[DayAlerts]) -> Markup:
    """An accessible SVG bar chart of ``days`` (oldest first)."""
    peak = max((d.sent for d in days), default=0) or 1
    slot = WIDTH / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)
    plot = HEIGHT - AXIS
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">',
             '<title id="chart-title">Texts per day, and the share marked wrong</title>',
             f'<line x1="0" y1="{plot}" x2="{WIDTH}" y2="{plot}" stroke="#888" stroke-width="1"/>']
    for i, day in enumerate(days):
        x = i * slot + (slot - bar) / 2
        share = f", {day.share_wrong:.0%} marked wrong" if day.share_wrong is not None else ""
        tip = f"{day.day.isoformat()}: {day.sent} text(s), {day.judged} judged, {day.wrong} marked wrong{share}"
        parts.append(f'<g class="day" data-day="{day.day.isoformat()}" data-sent="{day.sent}" data-wrong="{day.wrong}">'
                     f"<title>{escape(tip)}</title>")
        top = plot
        for kind, count in (("wrong", day.wrong), ("right", day.judged - day.wrong), ("unjudged", day.sent - day.judged)):
            if count:
                height = plot * count / peak
                top -= height
                parts.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{height:.1f}" fill="{COLOURS[kind]}"/>')
        if not day.sent:  # an empty day still shows where it is
            parts.append(f'<rect x="{x:.1f}" y="{plot - 1}" width="{bar:.1f}" height="1" fill="{COLOURS["unjudged"]}"/>')
        parts.append("</g>")
    if days:
        parts.append(f'<text x="0" y="{HEIGHT - 4}" font-size="11" fill="#555">{days[0].day.isoformat()}</text>')
        parts.append(f'<text x="{WIDTH}" y="{HEIGHT - 4}" font-size="11" fill="#555" text-anchor="end">'
                     f"{days[-1].day.isoformat()}</text>")
    parts.append(f'<text x="2" y="11" font-size="11" fill="#555">max {peak} / day</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def share_wrong(days: Sequence[DayAlerts]) -> float | None:
    """The share of all texts in ``days`` that the user marked wrong."""
    sent = sum(d.sent for d in days)
    return sum(d.wrong for d in days) / sent if sent else None
