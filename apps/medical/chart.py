"""A numeric result over time as a server-rendered SVG line chart (no script, no chart library):
the record's chart page draws one kind of observation (weight, glucose, blood pressure with its
systolic and diastolic lines), with dated and valued axes, a title and a description for screen
readers, and the same numbers as a table below it. Pure: entries in, text out."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils.html import escape

# LOINC codes of blood pressure: the panel, and its two components.
BP_PANEL, SYSTOLIC, DIASTOLIC = "85354-9", "8480-6", "8462-4"

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 44


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float


@dataclass(frozen=True)
class Line:
    label: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Row:
    """One reading for the table under the chart: its date in words and each line's value."""

    when: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Series:
    """What can be charted in a record: one code, its name in words, how many readings."""

    key: str
    label: str
    unit: str
    count: int


def when_of(text: str) -> datetime | None:
    """A FHIR date or dateTime ("2024", "2024-05", "2024-05-02", "2024-05-02T08:30:00Z") as an
    aware datetime; None for anything else (a reading without a date is not drawn)."""
    text = (text or "").strip()
    if not text:
        return None
    if len(text) == 4 and text.isdigit():
        text += "-01-01"
    elif len(text) == 7 and text[4] == "-":
        text += "-01"
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def key_of(code: str, display: str = "") -> str:
    """What names a series in a page's address: the bare code ("8480-6" of
    "http://loinc.org|8480-6"), or the display for a reading that has no code."""
    bare = (code or "").rsplit("|", 1)[-1]
    return bare or (display or "").strip()


def component_value(resource: dict, code: str) -> float | None:
    """The number of an Observation's component with ``code`` (a blood pressure's systolic)."""
    for part in resource.get("component") or []:
        codings = (part.get("code") or {}).get("coding") or []
        if any(c.get("code") == code for c in codings):
            value = (part.get("valueQuantity") or {}).get("value")
            return float(value) if isinstance(value, int | float) else None
    return None


def is_blood_pressure(key: str) -> bool:
    return key == BP_PANEL


def lines_of(entries: Iterable, key: str) -> list[Line]:
    """The lines of series ``key`` from Observation entries (``selectors.Entry``): blood
    pressure gives a systolic and a diastolic line, anything else one line of its values."""
    chosen = [e for e in entries if key_of(e.code, e.display) == key]
    if is_blood_pressure(key):
        high, low = [], []
        for e in chosen:
            at = when_of(e.date)
            if at is None:
                continue
            systolic = component_value(e.resource, SYSTOLIC)
            diastolic = component_value(e.resource, DIASTOLIC)
            if systolic is None and e.value is not None:
                systolic = float(e.value)
            if systolic is not None:
                high.append(Point(at, systolic))
            if diastolic is not None:
                low.append(Point(at, diastolic))
        lines = [
            Line("Systolic", tuple(sorted(high, key=_at))),
            Line("Diastolic", tuple(sorted(low, key=_at))),
        ]
        return [line for line in lines if line.points]
    points = [
        Point(at, float(e.value))
        for e in chosen
        if e.value is not None and (at := when_of(e.date)) is not None
    ]
    label = chosen[0].display if chosen else key
    return [Line(label or key, tuple(sorted(points, key=_at)))] if points else []


def _at(point: Point) -> datetime:
    return point.at


def series_in(entries: Iterable) -> list[Series]:
    """Every series a record's observations can draw (a numeric value and a date), most
    readings first."""
    found: dict[str, list] = {}
    for e in entries:
        if e.value is None or when_of(e.date) is None:
            continue
        key = key_of(e.code, e.display)
        if key:
            found.setdefault(key, []).append(e)
    series = [
        Series(key, (found[key][0].display or key), found[key][0].unit or "", len(found[key]))
        for key in found
    ]
    return sorted(series, key=lambda s: (-s.count, s.label.lower()))


# -- drawing -------------------------------------------------------------------------------------


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values from below ``low`` to above ``high``, about ``count`` steps apart."""
    if math.isclose(low, high):
        low, high = low - 1, high + 1
    raw = (high - low) / count
    size = 10 ** math.floor(math.log10(raw))
    step = next(m * size for m in (1, 2, 2.5, 5, 10) if m * size >= raw)
    start = math.floor(low / step) * step
    steps = math.ceil(round((high - start) / step, 9))
    return [round(start + i * step, 10) for i in range(steps + 1)]


def number(value: float) -> str:
    """A value as people read it: 72, 36.6, 5.25 (no trailing zeros)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def day(at: datetime, *, with_time: bool = False) -> str:
    said = f"{at.day} {at:%b %Y}"
    return f"{said}, {at:%H:%M}" if with_time else said


def _time_ticks(first: datetime, last: datetime, days: list[datetime], count: int = 4) -> list:
    """Where the time axis is labelled: at each reading's day when there are a few days (the
    labels then sit under the dots), else evenly across the span."""
    if 1 < len(days) <= 6:
        return days
    if first == last:
        return [first]
    span = (last - first) / count
    return [first + span * i for i in range(count + 1)]


def _line(kind: str, x1: float, x2: float, y1: float, y2: float) -> str:
    return f'<line class="chart-{kind}" x1="{x1:.1f}" x2="{x2:.1f}" y1="{y1:.1f}" y2="{y2:.1f}"/>'


def _text(x: float, y: float, text: str, anchor: str = "end") -> str:
    return (
        f'<text class="chart-label" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">'
        f"{escape(text)}</text>"
    )


def _described(lines: Sequence[Line], unit: str) -> str:
    """The chart in one sentence, for screen readers (its ``desc``)."""
    points = [p for line in lines for p in line.points]
    parts = []
    for line in lines:
        values = [p.value for p in line.points]
        count = len(values)
        parts.append(
            f"{line.label}: {count} reading{'s' if count != 1 else ''} from "
            f"{number(min(values))} to {number(max(values))}{' ' + unit if unit else ''}"
        )
    span = f"{day(min(p.at for p in points))} to {day(max(p.at for p in points))}"
    return f"{'; '.join(parts)}, {span}."


def chart_svg(lines: Sequence[Line], *, title: str, unit: str = "") -> str:
    """An accessible SVG line chart of ``lines`` (each at least one point): a title and a
    description the image is named by, value and date axes, a dot per reading with its own
    title. Colours and sizes come from classes (medical.css): the pages allow no inline style."""
    points = [p for line in lines for p in line.points]
    if not points:
        return ""
    first, last = min(p.at for p in points), max(p.at for p in points)
    readings = last - first  # the span of the readings themselves
    if first == last:  # one reading: the dot in the middle of a two-day span
        first, last = first - timedelta(days=1), last + timedelta(days=1)
    values = ticks(min(p.value for p in points), max(p.value for p in points))
    low, high = values[0], values[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom = TOP + plot_h
    seconds = (last - first).total_seconds()

    def x(at: datetime) -> float:
        return LEFT + plot_w * (at - first).total_seconds() / seconds

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - low) / (high - low))

    same_day = timedelta(0) < readings <= timedelta(days=1)

    def when(at: datetime) -> str:  # an axis label: as much of the time as the span needs
        if same_day:
            return f"{at:%H:%M}"
        return f"{at.day} {at:%b}" if readings <= timedelta(days=90) else day(at)

    out = [
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(_described(lines, unit))}</desc>',
    ]
    for value in values:  # horizontal grid lines with their values
        out += [_line("grid", LEFT, WIDTH - RIGHT, y(value), y(value))]
        out += [_text(LEFT - 6, y(value) + 4, number(value))]
    days = sorted({p.at.date(): p.at for p in sorted(points, key=_at, reverse=True)}.values())
    shown = set()
    for at in _time_ticks(first, last, [] if same_day else days):
        if when(at) in shown:  # two ticks on one day say it once
            continue
        shown.add(when(at))
        pos = x(at)
        anchor = "start" if pos <= LEFT + 1 else "end" if pos >= WIDTH - RIGHT - 1 else "middle"
        out += [_line("tick", pos, pos, bottom, bottom + 5)]
        out += [_text(pos, bottom + 22, when(at), anchor)]
    out += [
        _line("axis", LEFT, WIDTH - RIGHT, bottom, bottom),
        _line("axis", LEFT, LEFT, TOP, bottom),
    ]
    suffix = f" {unit}" if unit else ""
    for n, line in enumerate(lines, start=1):
        path = " ".join(f"{x(p.at):.1f},{y(p.value):.1f}" for p in line.points)
        out.append(f'<polyline class="chart-line chart-line-{n}" fill="none" points="{path}"/>')
        for p in line.points:
            said = f"{line.label}: {number(p.value)}{suffix}, {day(p.at, with_time=same_day)}"
            out.append(
                f'<circle class="chart-dot chart-line-{n}" cx="{x(p.at):.1f}" '
                f'cy="{y(p.value):.1f}" r="3.5"><title>{escape(said)}</title></circle>'
            )
    out.append("</svg>")
    return "\n".join(out)


def table_rows(lines: Sequence[Line]) -> list[Row]:
    """The readings as a table: one row per time, one column per line, newest first."""
    times = sorted({p.at for line in lines for p in line.points}, reverse=True)
    by_line = [{p.at: p.value for p in line.points} for line in lines]
    with_time = len({t.date() for t in times}) != len(times)
    return [
        Row(
            day(at, with_time=with_time or bool(at.hour or at.minute)),
            tuple(number(values[at]) if at in values else "" for values in by_line),
        )
        for at in times
    ]


def legend(lines: Sequence[Line]) -> list[tuple[int, str]]:
    """Each line's number (its colour class) and label, for the legend beside the chart."""
    return [(n, line.label) for n, line in enumerate(lines, start=1)]
