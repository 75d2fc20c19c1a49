"""The results chart without a page: series found in a record's observations (numbers with
dates only), blood pressure drawn as two lines from its components, round axis values, FHIR
dates of every precision, and an SVG that names itself for screen readers and escapes text."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from xml.etree import ElementTree

from apps.medical import chart
from apps.medical.selectors import Entry
from tests.medical import samples

SVG = "{http://www.w3.org/2000/svg}"


def entry(
    resource: dict, *, code: str, display: str, value: float | None, date: str, unit: str = ""
) -> Entry:
    return Entry(
        type="Observation", fhir_id="x", resource=resource, code=code, display=display,
        date=date, status="final", value=value, unit=unit, sensitive=False, thread_id="t", pk="p",
    )  # fmt: skip


def bp(high: int, low: int, when: str) -> Entry:
    resource = samples.observation_bp(high, low, when=when)
    return entry(
        resource,
        code="http://loinc.org|85354-9",
        display="Blood pressure",
        value=high,
        date=when,
        unit="mmHg",
    )


def weight(kg: float | None, when: str) -> Entry:
    return entry(
        {}, code="http://loinc.org|29463-7", display="Body weight", value=kg, date=when, unit="kg"
    )


def test_fhir_dates_of_every_precision_and_nothing_else():
    assert chart.when_of("2024") == datetime(2024, 1, 1, tzinfo=UTC)
    assert chart.when_of("2024-05") == datetime(2024, 5, 1, tzinfo=UTC)
    assert chart.when_of("2024-05-02") == datetime(2024, 5, 2, tzinfo=UTC)
    assert chart.when_of("2024-05-02T08:30:00Z") == datetime(2024, 5, 2, 8, 30, tzinfo=UTC)
    assert chart.when_of("2024-05-02T10:30:00+02:00") == datetime(2024, 5, 2, 8, 30, tzinfo=UTC)
    assert chart.when_of("") is None
    assert chart.when_of("last spring") is None


def test_series_are_numbers_with_dates_most_readings_first():
    entries = [
        bp(120, 80, "2026-03-01T08:00:00Z"),
        bp(130, 85, "2026-03-02T08:00:00Z"),
        weight(72.5, "2026-03-01"),
        weight(None, "2026-03-02"),  # no number: not drawn
        weight(73, ""),  # no date: not drawn
        entry({}, code="", display="Mood", value=4, date="2026-03-01"),  # no code: its name
    ]
    found = chart.series_in(entries)
    assert [(s.key, s.label, s.count) for s in found] == [
        ("85354-9", "Blood pressure", 2),
        ("29463-7", "Body weight", 1),
        ("Mood", "Mood", 1),
    ]
    assert chart.key_of("http://loinc.org|8480-6") == "8480-6"


def test_blood_pressure_is_two_lines_in_time_order():
    entries = [bp(130, 85, "2026-03-02T08:00:00Z"), bp(120, 80, "2026-03-01T08:00:00Z")]
    high, low = chart.lines_of(entries, "85354-9")
    assert (high.label, [p.value for p in high.points]) == ("Systolic", [120.0, 130.0])
    assert (low.label, [p.value for p in low.points]) == ("Diastolic", [80.0, 85.0])
    rows = chart.table_rows([high, low])
    assert [(r.when, r.values) for r in rows] == [
        ("2 Mar 2026, 08:00", ("130", "85")),
        ("1 Mar 2026, 08:00", ("120", "80")),
    ]


def test_axis_values_are_round_and_cover_the_readings():
    assert chart.ticks(78, 131) == [60, 80, 100, 120, 140]
    assert chart.ticks(78, 126) == [70, 80, 90, 100, 110, 120, 130]
    assert chart.ticks(72.3, 73.1) == [72.2, 72.4, 72.6, 72.8, 73.0, 73.2]
    assert chart.ticks(5, 5) == [4, 4.5, 5, 5.5, 6]
    assert chart.number(36.60) == "36.6"
    assert chart.number(120.0) == "120"


def test_the_svg_is_named_drawn_and_escaped():
    entries = [bp(120 + n, 80 + n, f"2026-03-0{n + 1}T08:00:00Z") for n in range(5)]
    lines = chart.lines_of(entries, "85354-9")
    svg = chart.chart_svg(lines, title="Blood <pressure> over time", unit="mmHg")
    tree = ElementTree.fromstring(svg)  # noqa: S314 - our own output: well-formed XML
    assert tree.get("role") == "img"
    assert tree.get("aria-labelledby") == "chart-title chart-desc"
    assert tree.find(f"{SVG}title").text == "Blood <pressure> over time"
    desc = tree.find(f"{SVG}desc").text
    assert desc == (
        "Systolic: 5 readings from 120 to 124 mmHg; Diastolic: 5 readings from 80 to 84 mmHg, "
        "1 Mar 2026 to 5 Mar 2026."
    )
    polylines = tree.findall(f"{SVG}polyline")
    assert [p.get("class") for p in polylines] == [
        "chart-line chart-line-1",
        "chart-line chart-line-2",
    ]
    dots = tree.findall(f"{SVG}circle")
    assert len(dots) == 10
    assert dots[0].find(f"{SVG}title").text == "Systolic: 120 mmHg, 1 Mar 2026"
    labels = [t.text for t in tree.findall(f"{SVG}text")]
    assert labels[-5:] == ["1 Mar", "2 Mar", "3 Mar", "4 Mar", "5 Mar"]
    assert "style=" not in svg  # the page's CSP allows no inline style
    # The newest reading is drawn right of the oldest, and higher values higher up.
    first, *_, last = (
        tuple(map(float, xy.split(","))) for xy in polylines[0].get("points").split()
    )
    assert last[0] > first[0]
    assert last[1] < first[1]


def test_one_reading_is_drawn_in_the_middle_and_nothing_draws_nothing():
    (line,) = chart.lines_of([weight(72.5, "2026-03-01")], "29463-7")
    svg = chart.chart_svg([line], title="Body weight over time", unit="kg")
    (dot,) = re.findall(r'cx="([0-9.]+)"', svg)
    assert abs(float(dot) - (chart.LEFT + (chart.WIDTH - chart.LEFT - chart.RIGHT) / 2)) < 1
    assert chart.chart_svg([], title="Nothing") == ""
    assert chart.lines_of([], "29463-7") == []


def test_the_time_axis_says_as_much_as_the_span_needs():
    def labels(*whens: str) -> list[str]:
        lines = chart.lines_of([weight(70 + n, w) for n, w in enumerate(whens)], "29463-7")
        svg = chart.chart_svg(lines, title="Body weight over time", unit="kg")
        return re.findall(r'text-anchor="(?:start|middle|end)">([^<]*[A-Za-z:][^<]*)</text>', svg)

    assert labels("2026-03-01T08:00:00Z", "2026-03-01T20:00:00Z") == [
        "08:00", "11:00", "14:00", "17:00", "20:00",
    ]  # fmt: skip
    assert labels("2026-01-01", "2026-12-31")[0] == "1 Jan 2026"
    assert labels("2026-03-01")[0] == "28 Feb"  # one reading: the day before to the day after
