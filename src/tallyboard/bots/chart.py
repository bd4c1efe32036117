"""A small bar chart as PNG bytes (Pillow): one bar per day, readable on a phone."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 640, 280
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 56, 36, 28
BACKGROUND, BAR, TODAY, TEXT, GRID = "#2b2d31", "#5865f2", "#57f287", "#dbdee1", "#404249"


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str,
              unit: str = "h") -> bytes:
    """Bars for `values` (the last one highlighted: today), `labels` under them, the top
    of the scale in `unit` on the left."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    draw.text((MARGIN_LEFT, 6), title, fill=TEXT, font=font)
    top = max(max(values, default=0.0), 1e-9)
    plot_h = HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    base = HEIGHT - MARGIN_BOTTOM
    for fraction in (0.5, 1.0):
        y = base - plot_h * fraction
        draw.line([(MARGIN_LEFT, y), (WIDTH - 8, y)], fill=GRID)
        draw.text((4, y - 8), f"{top * fraction:.1f}{unit}", fill=TEXT, font=font)
    slot = (WIDTH - MARGIN_LEFT - 8) / max(len(values), 1)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0 = MARGIN_LEFT + i * slot + slot * 0.15
        x1 = MARGIN_LEFT + (i + 1) * slot - slot * 0.15
        height = plot_h * (value / top) if value > 0 else 0
        if height:
            draw.rectangle([(x0, base - height), (x1, base)],
                           fill=TODAY if i == len(values) - 1 else BAR)
        draw.text(((x0 + x1) / 2, base + 6), label, fill=TEXT, font=font, anchor="mt")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
