"""One line per figure: its value beside the issue's target and the floor of the same run.

Every benchmark reports its headline figures through ``figure``; ``python -m bench`` collects
them and prints the summary table at the end (what ``bench/README.md`` keeps, with the date
and commit). A figure meets its target when ``value`` is on the right side of ``target``
(``higher``: at least, otherwise at most).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: float | None = None
    higher: bool = True
    floor: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher else self.value <= self.target

    def line(self) -> str:
        want = ""
        if self.target is not None:
            sign = ">=" if self.higher else "<="
            want = f"  (target {sign} {_num(self.target)} {self.unit}: "
            want += "met)" if self.met else "NOT met)"
        floor = f"  [floor: {self.floor}]" if self.floor else ""
        return f"{self.name}: {_num(self.value)} {self.unit}{want}{floor}"


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}".replace(",", " ")
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


_collected: list[Figure] = []


def figure(
    name: str,
    value: float,
    unit: str,
    *,
    target: float | None = None,
    higher: bool = True,
    floor: str = "",
) -> dict:
    """Print one headline figure now and keep it for the summary; returns it as a dict (for
    the benchmark's JSON result)."""
    item = Figure(name, value, unit, target, higher, floor)
    _collected.append(item)
    print(f"   * {item.line()}", flush=True)
    return asdict(item) | {"met": item.met}


def collected() -> list[Figure]:
    return list(_collected)
