"""Units and amounts of the ledger: parsing what a person types, formatting, storing.

Amounts are integers in milli-units (1.000 unit = 1000): exact, no float anywhere. A tally's unit
is the CHIP, an ISO 4217 currency, or a named commodity ("hours"). Pure: no Django, no DB.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pycountry

MILLI = 1000
# 10**12 whole units: far beyond any tally between two people, and well inside SQLite's int64.
MAX_AMOUNT = 10**15

KIND_CHIP = "chip"
KIND_CURRENCY = "currency"
KIND_COMMODITY = "commodity"
KINDS = (KIND_CHIP, KIND_CURRENCY, KIND_COMMODITY)

CHIP_CODE = "CHIP"
COMMODITY_MAX_CHARS = 24

# ISO 4217 minor units; pycountry does not carry them, so the exceptions to "2" are listed here.
_ZERO_DECIMAL_CURRENCIES = frozenset(
    {"JPY", "KRW", "ISK", "CLP", "VND", "XAF", "XOF", "XPF"}
    | {"UGX", "PYG", "RWF", "KMF", "GNF", "DJF", "BIF", "VUV"}
)
_THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})

_CHIP_WORDS = frozenset({"chip", "chips"})
_COMMODITY_PUNCTUATION = frozenset(" -.")
# Longer than any amount a person would type; keeps int() far from its digit limit.
_AMOUNT_MAX_CHARS = 64
# Spaces people (and locales) put between groups of thousands.
_GROUP_SPACES = {"\u00a0": " ", "\u2009": " ", "\u202f": " "}
_DIGITS = re.compile(r"[0-9]+")
_BEANCOUNT_SYMBOL = re.compile(r"[A-Z]([A-Z0-9'._-]{0,22}[A-Z0-9])?")

_NOT_A_NUMBER = "The amount must be a number, like 12.50."


class AmountError(ValueError):
    """An amount or unit that cannot be used; the message is a sentence for a person."""


@dataclass(frozen=True)
class Unit:
    """What a tally counts in. Two units are the same when kind and code are (name is display)."""

    kind: str
    code: str
    name: str = field(compare=False)

    def __post_init__(self) -> None:
        # Every Unit in the program is valid, however it was built.
        _unit_check(self.kind, self.code, self.name)

    @property
    def decimals(self) -> int:
        """How many decimals a page shows at least (storage is always milli-units)."""
        if self.kind != KIND_CURRENCY:
            return 3
        if self.code in _ZERO_DECIMAL_CURRENCIES:
            return 0
        if self.code in _THREE_DECIMAL_CURRENCIES:
            return 3
        return 2


# --- units ---------------------------------------------------------------------------------


def _currency_name(code: str) -> str | None:
    """The currency's name when ``code`` is an ISO 4217 code pycountry knows, else None."""
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        return None
    currency = pycountry.currencies.get(alpha_3=code)
    return None if currency is None else str(currency.name)


def _commodity_clean(text: str) -> str:
    """The commodity name as stored: NFC, whitespace collapsed; AmountError when unusable."""
    # NFC so that "é" typed two ways is one unit; split() also turns tabs and newlines into spaces.
    name = " ".join(unicodedata.normalize("NFC", text).split())
    if not name:
        raise AmountError('Please name the unit, like "EUR", "CHIP" or "hours".')
    if len(name) > COMMODITY_MAX_CHARS:
        raise AmountError(
            f"A unit's name can be at most {COMMODITY_MAX_CHARS} characters; "
            f"this one has {len(name)}."
        )
    for char in name:
        if not (char.isalpha() or char in "0123456789" or char in _COMMODITY_PUNCTUATION):
            raise AmountError(
                "A unit's name can hold only letters, digits, spaces, '-' and '.'; "
                f"{char!r} is not allowed."
            )
    if not any(char.isalpha() for char in name):
        raise AmountError('A unit\'s name needs at least one letter, like "hours".')
    return name


def unit_parse(text: str) -> Unit:
    """The unit a person typed: "CHIP", an ISO currency code ("eur" too), or a commodity name.

    Three letters that pycountry knows are a currency in any case ("pen" is the Peruvian sol:
    a page shows the name, and "pens" is a commodity). Three capitals it does not know ("XYZ")
    are refused as a mistyped code; other unknown three-letter words ("kWh", "egg") are commodities.
    """
    if not isinstance(text, str):
        raise AmountError('Please name the unit, like "EUR", "CHIP" or "hours".')
    stripped = text.strip()
    if stripped.lower() in _CHIP_WORDS:
        return CHIP
    currency_name = _currency_name(stripped)
    if currency_name is not None:
        return Unit(KIND_CURRENCY, stripped.upper(), currency_name)
    if len(stripped) == 3 and stripped.isascii() and stripped.isalpha() and stripped.isupper():
        raise AmountError(
            f"{stripped} is not a currency code we know; to count in something else, "
            'write its name, like "hours".'
        )
    name = _commodity_clean(stripped)
    return Unit(KIND_COMMODITY, name, name)


def _unit_check(kind: Any, code: Any, name: Any) -> None:
    """Raise AmountError unless (kind, code, name) is exactly what unit_parse would build."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise AmountError(
            "This unit is not readable: its kind must be chip, currency or commodity."
        )
    if not isinstance(code, str) or not isinstance(name, str):
        raise AmountError("This unit is not readable: its code and name must be text.")
    if kind == KIND_CHIP:
        if code != CHIP_CODE or name != CHIP_CODE:
            raise AmountError("This unit is not readable: a CHIP unit must be called CHIP.")
        return
    if kind == KIND_CURRENCY:
        expected_name = _currency_name(code) if code.isupper() else None
        if expected_name is None:
            raise AmountError(
                f"This unit is not readable: {code[:8]!r} is not a currency code we know."
            )
        if name != expected_name:
            raise AmountError(
                f"This unit is not readable: {code} is called {expected_name!r}, not {name[:40]!r}."
            )
        return
    # A commodity must already be in its stored form, and must not be a word that means CHIP or
    # a currency: otherwise one thing could be counted under two units.
    clean = _commodity_clean(code)
    if clean != code or name != code:
        raise AmountError("This unit is not readable: its name is not in the stored form.")
    if code.lower() in _CHIP_WORDS or _currency_name(code) is not None:
        raise AmountError(f"This unit is not readable: {code!r} is not a commodity name.")
    if len(code) == 3 and code.isascii() and code.isalpha() and code.isupper():
        raise AmountError(f"This unit is not readable: {code!r} looks like a currency code.")


CHIP = Unit(KIND_CHIP, CHIP_CODE, CHIP_CODE)


def unit_data(unit: Unit) -> dict[str, str]:
    """The unit as plain data for a row or an op."""
    return {"kind": unit.kind, "code": unit.code, "name": unit.name}


def unit_from_data(data: Any) -> Unit:
    """The unit stored by ``unit_data``, checked again: a peer may have written anything.

    A currency's name is taken from our own pycountry (a peer with another version may spell it
    differently); everything else must be exactly the stored form.
    """
    if not isinstance(data, dict) or set(data) != {"kind", "code", "name"}:
        raise AmountError("This unit is not readable: it must have a kind, a code and a name.")
    kind, code, name = data["kind"], data["code"], data["name"]
    if kind == KIND_CURRENCY and isinstance(code, str) and isinstance(name, str):
        if not 1 <= len(name) <= 100 or any(unicodedata.category(c)[0] == "C" for c in name):
            raise AmountError("This unit is not readable: the currency's name is malformed.")
        name = _currency_name(code) if code.isupper() else None
        if name is None:
            raise AmountError(
                f"This unit is not readable: {code[:8]!r} is not a currency code we know."
            )
    if isinstance(code, str) and len(code) > COMMODITY_MAX_CHARS * 4:
        # Do not echo or normalise megabytes a peer sent.
        raise AmountError("This unit is not readable: its code is far too long.")
    return Unit(kind, code, name)


# --- amounts -------------------------------------------------------------------------------


def _check_range(milli: int, *, allow_zero: bool, allow_negative: bool) -> int:
    if abs(milli) > MAX_AMOUNT:
        raise AmountError(
            f"The amount is too large; a ledger holds at most "
            f"{format_amount(MAX_AMOUNT).split('.')[0]} units."
        )
    if milli == 0 and not allow_zero:
        raise AmountError("The amount must be more than zero.")
    if milli < 0 and not allow_negative:
        raise AmountError("The amount cannot be negative.")
    return milli


def _integer_part(text: str) -> int:
    """The whole units of "1,234" or "1 234" or "1234"; groups must be of three."""
    if text == "":
        return 0
    if _DIGITS.fullmatch(text):
        return int(text)
    separators = {char for char in text if not char.isdigit()}
    if len(separators) != 1 or not separators <= {",", " "}:
        raise AmountError(_NOT_A_NUMBER)
    groups = text.split(separators.pop())
    first, rest = groups[0], groups[1:]
    if not (1 <= len(first) <= 3 and _DIGITS.fullmatch(first)) or not all(
        len(group) == 3 and _DIGITS.fullmatch(group) for group in rest
    ):
        raise AmountError(
            "Thousands must be grouped by three, like 1,234,567.50; or leave out the separators."
        )
    return int("".join(groups))


def _fraction_milli(text: str) -> int:
    """The milli-units of the digits after the decimal mark ("5" -> 500)."""
    if text == "":
        return 0
    if not _DIGITS.fullmatch(text):
        raise AmountError(_NOT_A_NUMBER)
    # Trailing zeros lose nothing, so "12.5000" is accepted.
    if len(text.rstrip("0")) > 3:
        raise AmountError("The amount can have at most three digits after the point, like 12.345.")
    return int(text[:3].ljust(3, "0"))


def _split_decimal(body: str) -> tuple[str, str]:
    """(whole part, fraction) of an unsigned amount, deciding what a comma means."""
    if "." in body:
        if body.count(".") > 1:
            raise AmountError("The amount can have only one decimal point, like 1234.50.")
        whole, fraction = body.split(".")
        return whole, fraction
    if body.count(",") == 1:
        whole, fraction = body.split(",")
        # "12,5" and "1 234,50" have a decimal comma. "1,234" is ambiguous (1234 or 1.234): it is
        # read as thousands, the common English reading; a person meaning 1.234 writes "1.234".
        # "0,001" cannot be thousands (no group starts with 0), so it is a decimal comma.
        thousands = len(fraction) == 3 and whole[:1] in tuple("123456789")
        if not thousands:
            return whole, fraction
    return body, ""


def parse_amount(text: str | int, *, allow_zero: bool = False, allow_negative: bool = False) -> int:
    """Milli-units of what a person wrote ("12.50", "1,234.5", "12,5"); an int is whole units."""
    if isinstance(text, bool):
        raise AmountError(_NOT_A_NUMBER)
    if isinstance(text, int):
        if abs(text) > MAX_AMOUNT // MILLI:
            return _check_range(MAX_AMOUNT + 1, allow_zero=True, allow_negative=True)
        return _check_range(text * MILLI, allow_zero=allow_zero, allow_negative=allow_negative)
    if not isinstance(text, str):
        raise AmountError(_NOT_A_NUMBER)
    body = text.strip()
    if not body:
        raise AmountError("Please enter an amount, like 12.50.")
    if len(body) > _AMOUNT_MAX_CHARS:
        raise AmountError("That is too long to be an amount.")
    for space, plain in _GROUP_SPACES.items():
        body = body.replace(space, plain)
    negative = body[0] == "-"
    if body[0] in "+-":
        body = body[1:].lstrip()
    if re.fullmatch(r"[0-9.,]*[0-9][eE][+-]?[0-9]+", body):
        raise AmountError("Please write the amount in plain digits, like 1200, not 1.2e3.")
    if not body or not all(char in "0123456789., " for char in body):
        raise AmountError(_NOT_A_NUMBER)
    whole, fraction = _split_decimal(body)
    if whole == "" and fraction == "":
        raise AmountError(_NOT_A_NUMBER)
    milli = _integer_part(whole) * MILLI + _fraction_milli(fraction)
    if negative:
        milli = -milli
    return _check_range(milli, allow_zero=allow_zero, allow_negative=allow_negative)


def format_amount(milli: int, unit: Unit | None = None, *, sign: bool = False) -> str:
    """ "1,234.50 EUR": the unit's decimals, more only when needed to show the exact amount."""
    if isinstance(milli, bool) or not isinstance(milli, int):
        raise TypeError(f"format_amount needs an int of milli-units, not {type(milli).__name__}")
    decimals = 3 if unit is None else unit.decimals
    whole, fraction = divmod(abs(milli), MILLI)
    digits = f"{fraction:03d}"
    # Drop trailing zeros down to the unit's decimals: 12.500 EUR -> 12.50, 12.505 stays.
    while len(digits) > decimals and digits.endswith("0"):
        digits = digits[:-1]
    text = f"{whole:,}" + (f".{digits}" if digits else "")
    if milli < 0:
        text = "-" + text
    elif sign and milli > 0:
        text = "+" + text
    return text if unit is None else f"{text} {unit.code}"


def milli_to_decimal(milli: int) -> Decimal:
    """The exact Decimal of an amount, always with three places (12500 -> Decimal("12.500"))."""
    if isinstance(milli, bool) or not isinstance(milli, int):
        raise TypeError(f"milli_to_decimal needs an int, not {type(milli).__name__}")
    # Built from its digits, so no decimal context (precision, rounding) is involved.
    digits = tuple(int(d) for d in str(abs(milli)))
    return Decimal((1 if milli < 0 else 0, digits, -3))


# --- beancount -----------------------------------------------------------------------------


def beancount_commodity(unit: Unit) -> str:
    """The unit's commodity symbol in a beancount 3 ledger; the same unit always gets the same one.

    Commodity names are uppercased with every other character run turned into "-" ("eggs dozen"
    -> "EGGS-DOZEN"), so names differing only in case or punctuation share a symbol. When letters
    are lost (non-Latin names), the name is cut, or the symbol would be CHIP or a currency's, a
    short hash of the name is appended so that the symbol still tells that unit apart.
    """
    if unit.kind != KIND_COMMODITY:
        return unit.code
    pieces: list[str] = []
    lossy = False
    separator = False
    for char in unicodedata.normalize("NFKD", unit.code):
        if unicodedata.combining(char):
            continue  # the accent of "é": "CAFE" still says what it is
        if char.isascii() and char.isalnum():
            if separator and pieces:
                pieces.append("-")
            pieces.append(char.upper())
            separator = False
        else:
            lossy = lossy or char.isalnum()
            separator = True
    symbol = "".join(pieces)
    if symbol and not symbol[0].isalpha():
        symbol = "U-" + symbol
    if not symbol or lossy or len(symbol) > 24 or symbol == CHIP_CODE or _currency_name(symbol):
        digest = hashlib.sha256(unit.code.encode()).hexdigest()[:6].upper()
        stem = (symbol or "U")[: 24 - len(digest) - 1].rstrip("-'._")
        symbol = f"{stem}-{digest}"
    if not _BEANCOUNT_SYMBOL.fullmatch(symbol):  # pragma: no cover - the rules above prevent it
        raise AssertionError(f"beancount symbol {symbol!r} for {unit.code!r} is not valid")
    return symbol
