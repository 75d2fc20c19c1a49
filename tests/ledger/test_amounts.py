"""Units and amounts of the ledger: parsing, formatting, peer data, beancount symbols."""

from __future__ import annotations

from decimal import Decimal

import pytest
from beancount import loader
from hypothesis import given
from hypothesis import strategies as st

from apps.ledger.amounts import (
    CHIP,
    MAX_AMOUNT,
    MILLI,
    AmountError,
    Unit,
    beancount_commodity,
    format_amount,
    milli_to_decimal,
    parse_amount,
    unit_data,
    unit_from_data,
    unit_parse,
)

EUR = unit_parse("EUR")
HOURS = unit_parse("hours")


# --- parse_amount --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "milli"),
    [
        ("12", 12_000),
        ("12.5", 12_500),
        ("12.500", 12_500),
        ("0.001", 1),
        (" 1 234.50 ", 1_234_500),
        ("1,234.50", 1_234_500),
        ("1,234,567", 1_234_567_000),
        ("12,5", 12_500),
        ("1 234,50", 1_234_500),
        ("0,001", 1),  # no thousands group starts with 0: a decimal comma
        ("1,234", 1_234_000),  # ambiguous; read as thousands (documented)
        ("1\u202f234.5", 1_234_500),  # narrow no-break space between thousands
        ("+3", 3_000),
        (".5", 500),
        ("12.5000", 12_500),  # trailing zeros lose nothing
        (7, 7_000),  # an int is whole units
    ],
)
def test_parse_amount_accepts(text: str | int, milli: int) -> None:
    assert parse_amount(text) == milli


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "Please enter an amount"),
        ("   ", "Please enter an amount"),
        ("12.3456", "at most three digits after the point"),
        ("nan", "must be a number"),
        ("inf", "must be a number"),
        ("-Infinity", "must be a number"),
        ("1e5", "plain digits"),
        ("1.2E-3", "plain digits"),
        ("12 EUR", "must be a number"),
        ("abc", "must be a number"),
        ("--1", "must be a number"),
        ("-", "must be a number"),
        (".", "must be a number"),
        ("١٢", "must be a number"),  # Arabic-Indic digits are not taken for ASCII ones
        ("1.2.3", "only one decimal point"),
        ("1,23.5", "grouped by three"),
        ("1 2", "grouped by three"),
        ("1" * 80, "too long"),
        ("1000000000001", "too large"),
        (10**12 + 1, "too large"),
        ("0", "more than zero"),
        ("0.000", "more than zero"),
        ("-3", "cannot be negative"),
        (True, "must be a number"),
        (1.5, "must be a number"),
    ],
)
def test_parse_amount_refuses_in_plain_words(text: object, words: str) -> None:
    with pytest.raises(AmountError) as caught:
        parse_amount(text)  # type: ignore[arg-type]
    message = str(caught.value)
    assert words in message
    assert message[0].isupper()
    assert message.endswith(".")
    assert "Traceback" not in message


def test_parse_amount_limits_and_options() -> None:
    assert parse_amount("1000000000000") == MAX_AMOUNT
    assert parse_amount(-(10**12), allow_negative=True) == -MAX_AMOUNT
    assert parse_amount("0", allow_zero=True) == 0
    assert parse_amount("-12.5", allow_negative=True) == -12_500
    assert parse_amount("- 1,234.5", allow_negative=True) == -1_234_500
    with pytest.raises(AmountError, match="more than zero"):
        parse_amount("0", allow_negative=True)


# --- format_amount -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("milli", "unit", "sign", "text"),
    [
        (12_500, EUR, False, "12.50 EUR"),
        (12_505, EUR, False, "12.505 EUR"),
        (12_510, EUR, False, "12.51 EUR"),
        (1_234_500, EUR, False, "1,234.50 EUR"),
        (-12_500, EUR, False, "-12.50 EUR"),
        (12_500, EUR, True, "+12.50 EUR"),
        (0, EUR, True, "0.00 EUR"),
        (12_500, CHIP, False, "12.500 CHIP"),
        (3_000, HOURS, False, "3.000 hours"),
        (12_000, unit_parse("JPY"), False, "12 JPY"),
        (12_500, unit_parse("JPY"), False, "12.5 JPY"),
        (5, unit_parse("KWD"), False, "0.005 KWD"),
        (1_234_567_890, None, False, "1,234,567.890"),
        (-1, None, True, "-0.001"),
    ],
)
def test_format_amount(milli: int, unit: Unit | None, sign: bool, text: str) -> None:
    assert format_amount(milli, unit, sign=sign) == text


def test_format_amount_refuses_non_ints() -> None:
    with pytest.raises(TypeError):
        format_amount(1.5)  # type: ignore[arg-type]


@given(
    milli=st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT),
    unit=st.sampled_from([None, CHIP, EUR, HOURS, unit_parse("JPY"), unit_parse("BHD")]),
    sign=st.booleans(),
)
def test_format_then_parse_round_trips(milli: int, unit: Unit | None, sign: bool) -> None:
    text = format_amount(milli, unit, sign=sign)
    number = text if unit is None else text.removesuffix(" " + unit.code)
    assert parse_amount(number, allow_zero=True, allow_negative=True) == milli


@given(st.integers(min_value=1, max_value=MAX_AMOUNT // MILLI))
def test_whole_units_parse_and_format_round_trip(units: int) -> None:
    milli = parse_amount(units)
    assert milli == parse_amount(str(units)) == parse_amount(f"{units:,}") == units * MILLI
    assert parse_amount(format_amount(milli)) == milli


def test_milli_to_decimal_is_exact_with_three_places() -> None:
    assert str(milli_to_decimal(12_500)) == "12.500"
    assert str(milli_to_decimal(-1)) == "-0.001"
    assert str(milli_to_decimal(0)) == "0.000"
    # Beyond the default 28-digit decimal context: still exact.
    big = 10**40 + 7
    assert str(milli_to_decimal(big)) == "1" + "0" * 37 + ".007"
    assert milli_to_decimal(MAX_AMOUNT) == Decimal(10**12)


# --- units ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["chip", "CHIP", "chips", " Chips "])
def test_unit_parse_chip(text: str) -> None:
    assert unit_parse(text) == CHIP
    assert CHIP.decimals == 3


def test_unit_parse_currency() -> None:
    assert unit_parse("eur") == Unit("currency", "EUR", "Euro")
    assert unit_parse(" EUR ").name == "Euro"
    assert (EUR.decimals, unit_parse("JPY").decimals, unit_parse("OMR").decimals) == (2, 0, 3)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("hours", "hours"),
        ("kWh", "kWh"),  # three letters pycountry does not know, not all capitals
        ("  many \t hours ", "many hours"),
        ("Café", "Caf\u00e9"),
        ("Cafe\u0301", "Caf\u00e9"),  # the decomposed spelling is the same unit
        ("яйца", "яйца"),
        ("a" * 24, "a" * 24),
    ],
)
def test_unit_parse_commodity(text: str, code: str) -> None:
    unit = unit_parse(text)
    assert (unit.kind, unit.code, unit.name, unit.decimals) == ("commodity", code, code, 3)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "Please name the unit"),
        ("   ", "Please name the unit"),
        ("XYZ", "XYZ is not a currency code we know; to count in something else, write its name"),
        ("a" * 25, "at most 24 characters"),
        ("eggs\x00", "not allowed"),
        ("eggs (dozen)", "not allowed"),
        ("12", "at least one letter"),
        ("--", "at least one letter"),
    ],
)
def test_unit_parse_refuses_in_plain_words(text: str, words: str) -> None:
    with pytest.raises(AmountError, match=words.replace("(", r"\(")):
        unit_parse(text)


@pytest.mark.parametrize("unit", [CHIP, EUR, HOURS, unit_parse("Café au lait")])
def test_unit_data_round_trips(unit: Unit) -> None:
    data = unit_data(unit)
    assert data == {"kind": unit.kind, "code": unit.code, "name": unit.name}
    back = unit_from_data(dict(data))
    assert (back.kind, back.code, back.name) == (unit.kind, unit.code, unit.name)


def test_unit_from_data_takes_the_currency_name_from_our_list() -> None:
    # A peer with another pycountry may spell the name differently; the code is what counts.
    back = unit_from_data({"kind": "currency", "code": "EUR", "name": "euro (old list)"})
    assert back == EUR
    assert back.name == "Euro"


@pytest.mark.parametrize(
    "data",
    [
        None,
        ["chip", "CHIP", "CHIP"],
        {"kind": "chip", "code": "CHIP"},
        {"kind": "chip", "code": "CHIP", "name": "CHIP", "extra": 1},
        {"kind": "bond", "code": "X", "name": "X"},
        {"kind": 1, "code": "CHIP", "name": "CHIP"},
        {"kind": "chip", "code": "chip", "name": "CHIP"},
        {"kind": "chip", "code": "CHIP", "name": "Chip"},
        {"kind": "currency", "code": "eur", "name": "Euro"},
        {"kind": "currency", "code": "XYZ", "name": "X"},
        {"kind": "currency", "code": 978, "name": "Euro"},
        {"kind": "currency", "code": "EUR", "name": None},
        {"kind": "currency", "code": "EUR", "name": ""},
        {"kind": "currency", "code": "EUR", "name": "Euro\x1b[31m"},
        {"kind": "commodity", "code": "hours", "name": "Hours"},
        {"kind": "commodity", "code": "many  hours", "name": "many  hours"},
        {"kind": "commodity", "code": " hours", "name": " hours"},
        {"kind": "commodity", "code": "hours\n", "name": "hours\n"},
        {"kind": "commodity", "code": "ho\x00urs", "name": "ho\x00urs"},
        {"kind": "commodity", "code": "a" * 25, "name": "a" * 25},
        {"kind": "commodity", "code": "a" * 100_000, "name": "a"},
        {"kind": "commodity", "code": "Cafe\u0301", "name": "Cafe\u0301"},  # not NFC
        {"kind": "commodity", "code": "EUR", "name": "EUR"},  # a currency in disguise
        {"kind": "commodity", "code": "eur", "name": "eur"},
        {"kind": "commodity", "code": "chips", "name": "chips"},
        {"kind": "commodity", "code": "XYZ", "name": "XYZ"},
        {"kind": "commodity", "code": ["hours"], "name": "hours"},
    ],
)
def test_unit_from_data_refuses_malformed_peer_data(data: object) -> None:
    with pytest.raises(AmountError) as caught:
        unit_from_data(data)
    message = str(caught.value)
    assert message.startswith("This unit is not readable") or "unit's name" in message
    assert len(message) < 200


def test_unit_constructor_checks_too() -> None:
    with pytest.raises(AmountError):
        Unit("currency", "EUR", "Dollar")


# --- beancount -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "symbol"),
    [
        ("CHIP", "CHIP"),
        ("EUR", "EUR"),
        ("hours", "HOURS"),
        ("kWh", "KWH"),
        ("eggs - dozen", "EGGS-DOZEN"),
        ("Café au lait", "CAFE-AU-LAIT"),
        ("x", "X"),
    ],
)
def test_beancount_commodity_symbols(text: str, symbol: str) -> None:
    assert beancount_commodity(unit_parse(text)) == symbol


def test_beancount_commodity_keeps_units_apart_when_letters_are_lost() -> None:
    symbols = {
        beancount_commodity(unit_parse(text))
        for text in ["яйца", "молоко", "chip.", "eur.", "2nd class", "a" * 24, "a" * 23 + "b"]
    }
    assert len(symbols) == 7
    assert not symbols & {"CHIP", "EUR", "U"}
    assert beancount_commodity(unit_parse("яйца")) == beancount_commodity(unit_parse("яйца"))


def test_beancount_loader_accepts_every_symbol() -> None:
    names = ["CHIP", "EUR", "JPY", "hours", "kWh", "eggs - dozen", "Café au lait", "x"]
    names += ["яйца", "chip.", "eur.", "2nd class", "a" * 24, "9.5 kg", "ß-ß"]
    symbols = [beancount_commodity(unit_parse(name)) for name in names]
    lines = ["2024-01-01 open Assets:Tally", "2024-01-01 open Income:Tally"]
    for symbol in symbols:
        lines.append(f"2024-01-01 commodity {symbol}")
        lines.append('2024-01-02 * "a payment"')
        lines.append(f"  Assets:Tally   1.500 {symbol}")
        lines.append(f"  Income:Tally   -1.500 {symbol}")
    entries, errors, _ = loader.load_string("\n".join(lines) + "\n")
    assert errors == []
    assert {entry.currency for entry in entries if hasattr(entry, "currency")} == set(symbols)
