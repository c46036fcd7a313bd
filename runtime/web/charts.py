"""Small server-side SVG charts for the dashboard: horizontal bars, grouped columns, a
line, a funnel.

Hand-written rather than a charting library: each is a few lines of geometry, the output
is plain SVG inside the page (no script, no request of its own, prints and screenshots
as rendered), every text is escaped, and the font stack names CJK fonts first so Chinese
labels don't render as boxes. Charts scale to their container through `viewBox`, so
they fit a 375 px phone. Values come in as numbers; labels as ready-made text.
"""
from __future__ import annotations

import math
from decimal import Decimal
from typing import Sequence

from markupsafe import Markup, escape

FONT = ("'Noto Sans CJK SC','Noto Sans SC','WenQuanYi Micro Hei','PingFang SC','Microsoft YaHei',"
        "'Hiragino Sans GB',system-ui,-apple-system,'Segoe UI',sans-serif")
#: Bootstrap's palette, so the charts match the page.
COLORS = ("#0d6efd", "#20c997", "#fd7e14", "#6f42c1", "#d63384", "#0dcaf0", "#ffc107", "#198754", "#6c757d")


def short(value: float) -> str:
    """A compact axis/value label: 1234567 → 1.23M, 12000 → 12K."""
    v = float(value)
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(v) >= size:
            text = f"{v / size:.2f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{v:.0f}" if v == int(v) else f"{v:.1f}"


def nice_ceiling(value: float) -> float:
    """The round number at or above `value` that makes four even grid steps (1, 2, 2.5, 5 × 10^k × 4)."""
    if value <= 0:
        return 1.0
    step = value / 4
    magnitude = 10 ** math.floor(math.log10(step))
    for m in (1, 2, 2.5, 5, 10):
        if step <= m * magnitude:
            return 4 * m * magnitude
    return value


def _svg(width: int, height: int, body: str, title: str) -> Markup:
    return Markup(
        f'<svg class="mc-chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'preserveAspectRatio="xMinYMin meet" font-family="{escape(FONT)}" font-size="12" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{body}</svg>')


def _empty(title: str, message: str) -> Markup:
    return _svg(320, 60, f'<text x="160" y="34" text-anchor="middle" fill="#6c757d">{escape(message)}</text>', title)


def _columns(text: str) -> int:
    """How wide a text is in columns (a CJK character is two)."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def fit_text(text: str, limit: int) -> str:
    """Cut a label to about `limit` columns (a CJK character counts as two)."""
    out, width = "", 0
    for ch in text:
        width += 2 if ord(ch) > 0x2E80 else 1
        if width > limit:
            return out + "…"
        out += ch
    return out


def hbars(items: Sequence[tuple[str, float | Decimal, str]], title: str, empty: str,
          color: str = COLORS[0], width: int = 480) -> Markup:
    """One horizontal bar per item: (label, value, value text), longest first as given."""
    if not items or not any(float(v) for _, v, _ in items):
        return _empty(title, empty)
    row, label_w, top = 26, 120, 6
    height = top * 2 + row * len(items)
    peak = max(float(v) for _, v, _ in items) or 1.0
    span = width - label_w - 96
    parts = []
    for i, (label, value, shown) in enumerate(items):
        y = top + i * row
        w = max(1.0, span * float(value) / peak) if float(value) else 0
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" fill="#212529">{escape(fit_text(label, 18))}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row - 10}" rx="3" fill="{color}"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 16}" fill="#495057">{escape(shown)}</text>')
    return _svg(width, height, "".join(parts), title)


def columns(categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | Decimal]]], title: str,
            empty: str, width: int = 640, height: int = 240) -> Markup:
    """Grouped columns: one group per category, one column per series, with a legend."""
    values = [float(v) for _, vals in series for v in vals]
    if not categories or not any(values):
        return _empty(title, empty)
    left, right, top, bottom = 44, 8, 24, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = nice_ceiling(max(values))
    group = plot_w / len(categories)
    bar = max(2.0, (group * 0.8) / max(1, len(series)))
    parts = _grid(left, top, plot_w, plot_h, peak)
    for s, (_, vals) in enumerate(series):
        for i, v in enumerate(vals):
            h = plot_h * float(v) / peak
            x = left + i * group + group * 0.1 + s * bar
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                         f'fill="{COLORS[s % len(COLORS)]}"><title>{escape(short(float(v)))}</title></rect>')
    parts += _x_labels(categories, left, group, top + plot_h + 16)
    parts += _legend([name for name, _ in series], left, 14)
    return _svg(width, height, "".join(parts), title)


def line(categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | Decimal]]], title: str,
         empty: str, width: int = 640, height: int = 200) -> Markup:
    """Lines with dots, one per series, over the categories."""
    values = [float(v) for _, vals in series for v in vals]
    if not categories or not any(values):
        return _empty(title, empty)
    left, right, top, bottom = 44, 8, 24, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = nice_ceiling(max(values))
    if all(v == int(v) for v in values):
        peak = max(peak, 4.0)  # counts: whole-number grid lines
    step = plot_w / len(categories)
    parts = _grid(left, top, plot_w, plot_h, peak)
    for s, (_, vals) in enumerate(series):
        color = COLORS[(s + 2) % len(COLORS)]
        points = [(left + step * (i + 0.5), top + plot_h - plot_h * float(v) / peak) for i, v in enumerate(vals)]
        parts.append('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>'.format(
            color, " ".join(f"{x:.1f},{y:.1f}" for x, y in points)))
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{escape(short(float(v)))}</title>'
                  f'</circle>' for (x, y), v in zip(points, vals)]
    parts += _x_labels(categories, left, step, top + plot_h + 16)
    parts += _legend([name for name, _ in series], left, 14, offset=2)
    return _svg(width, height, "".join(parts), title)


def funnel(items: Sequence[tuple[str, int, str]], title: str, empty: str, width: int = 480) -> Markup:
    """A funnel: one centred band per step, as wide as its count; (label, count, note)."""
    if not items or not any(n for _, n, _ in items):
        return _empty(title, empty)
    row, top = 34, 4
    height = top * 2 + row * len(items)
    peak = max(n for _, n, _ in items) or 1
    mid, span = width / 2, width - 20
    parts = []
    for i, (label, n, note) in enumerate(items):
        w = max(8.0, span * n / peak)
        y = top + i * row
        raw = f'{fit_text(label, 16)} · {n}{(" · " + note) if note else ""}'
        text = escape(raw)
        parts.append(f'<rect x="{mid - w / 2:.1f}" y="{y}" width="{w:.1f}" height="{row - 4}" rx="4" '
                     f'fill="{COLORS[i % len(COLORS)]}" fill-opacity="0.85"/>')
        if w >= 7 * _columns(raw) + 12:  # the text fits inside the band
            parts.append(f'<text x="{mid}" y="{y + 20}" text-anchor="middle" fill="#fff" font-weight="600" '
                         f'stroke="#000" stroke-opacity="0.25" stroke-width="0.6" paint-order="stroke">{text}</text>')
        else:  # a narrow band: the text beside it, in the page's colour
            parts.append(f'<text x="{mid + w / 2 + 6:.1f}" y="{y + 20}" fill="#212529">{text}</text>')
    return _svg(width, height, "".join(parts), title)


def _grid(left: float, top: float, plot_w: float, plot_h: float, peak: float) -> list[str]:
    parts = []
    for k in range(5):
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e9ecef"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#6c757d" font-size="10">'
                     f'{escape(short(peak * k / 4))}</text>')
    return parts


def _x_labels(categories: Sequence[str], left: float, step: float, y: float) -> list[str]:
    every = max(1, int(len(categories) / 12 + 0.999)) if step < 40 else 1
    return [f'<text x="{left + step * (i + 0.5):.1f}" y="{y:.1f}" text-anchor="middle" fill="#495057" '
            f'font-size="10">{escape(fit_text(c, 10))}</text>'
            for i, c in enumerate(categories) if i % every == 0]


def _legend(names: Sequence[str], x: float, y: float, offset: int = 0) -> list[str]:
    parts, cursor = [], x
    for i, name in enumerate(names):
        color = COLORS[(i + offset) % len(COLORS)]
        parts.append(f'<rect x="{cursor:.1f}" y="{y - 9}" width="10" height="10" rx="2" fill="{color}"/>'
                     f'<text x="{cursor + 14:.1f}" y="{y}" fill="#212529" font-size="11">{escape(name)}</text>')
        cursor += 24 + 7 * sum(2 if ord(c) > 0x2E80 else 1 for c in name)
    return parts
