"""Payment cards (Luhn), IBANs (mod-97 and per-country length) and US social security numbers.

Cards: 13-19 digits, written bare or in groups separated by single spaces or dashes, passing
the Luhn check and not one repeated digit. No issuer-prefix check (test and private-label cards
exist on every prefix); a 16-digit number failing Luhn is not a card. 12 digits count only with
a Maestro prefix (50, 56-58, 6304, 6390, 67.., 0604) and Luhn. A valid ISBN-13 (978/979, a
prefix no card network issues) is not a card, nor is a number starting with 0 (no issuer has
major industry identifier 0). When a run of digit groups
is longer than a card, the group-aligned windows inside it are tried (longest first).

IBANs: an upper-case country code and two check digits, then letters/digits (spaces or dashes
allowed between them), exactly as long as that country's IBAN, with ``mod 97 == 1``.

SSNs: ``AAA-GG-SSSS`` or ``AAA GG SSSS`` (one separator used twice) anywhere, bare 9 digits only
after the words "SSN" or "social security" (within 40 characters); never area 000, 666 or
900-999, group 00 or serial 0000.
"""

from __future__ import annotations

import re

from handoffd.privacy.detectors.base import TextIndex, find_all
from handoffd.privacy.findings import Finding

_CARD_RUN = re.compile(r"\d(?<![\w.,]\d)(?:[ -]?\d){11,}(?![\w]|[.,]\d)")
_SEP = re.compile(r"[ -]")
_GROUPS = re.compile(r"\d+")


def _card_grouping(run: str) -> bool:
    """One group of digits, or groups of 3-6 digits (4-4-4-4, Amex 4-6-5) where the last one
    may be shorter (a 13-digit number grouped by 4: 4-4-4-1)."""
    groups = _SEP.split(run)
    if len(groups) == 1:
        return True
    return all(3 <= len(g) <= 6 for g in groups[:-1]) and len(groups[-1]) <= 6


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# 12-digit cards exist only as Maestro; those are accepted on a Maestro prefix alone
_MAESTRO_12 = ("50", "56", "57", "58", "6304", "6390", "67", "0604")


def isbn13_ok(digits: str) -> bool:
    if len(digits) != 13 or not digits.startswith(("978", "979")):
        return False
    return sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10 == 0


def _is_card(digits: str) -> bool:
    n = len(digits)
    if n == 12:
        return digits.startswith(_MAESTRO_12) and luhn_ok(digits)
    if not 13 <= n <= 19 or digits[0] == "0" or len(set(digits)) == 1 or isbn13_ok(digits):
        return False
    return luhn_ok(digits)


class CardDetector:
    name = "credit_card"

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        out: list[Finding] = []
        if not index.has_digits(12):
            return out
        for pos, endpos in index.digit_windows(2, 2):
            if endpos - pos < 14:
                continue
            for m in _CARD_RUN.finditer(text, pos, endpos):
                run = m.group()
                digits = _SEP.sub("", run)
                if _is_card(digits) and _card_grouping(run):
                    out.append(Finding("CREDIT_CARD", m.start(), m.end(), "privacy.credit_card"))
                elif _SEP.search(run):
                    out.extend(self._windows(run, m.start()))
        return out

    @staticmethod
    def _windows(run: str, offset: int) -> list[Finding]:
        """Group-aligned windows of 12-19 digits, longest first from each group, left to right
        (a list of cards separated by single spaces is one run). Linear in the run's length.
        A window is one group, or groups as :func:`_card_grouping` allows: a grid of single
        digits is no card, whatever Luhn says of some stretch of it."""
        groups = [g.span() for g in _GROUPS.finditer(run)]
        sizes = [e - s for s, e in groups]
        digits = _SEP.sub("", run)
        before = [0]
        for size in sizes:
            before.append(before[-1] + size)
        best: list[tuple[int, int]] = []
        i = 0
        while i < len(groups):
            last = i  # extend over groups of 3-6 digits; only the final one may be shorter
            while (
                last + 1 < len(groups)
                and before[last + 2] - before[i] <= 19
                and 3 <= sizes[last] <= 6
                and sizes[last + 1] <= 6
            ):
                last += 1
            found = False
            for j in range(last, i - 1, -1):
                if before[j + 1] - before[i] < 12:
                    break
                s, e = groups[i][0], groups[j][1]
                if _is_card(digits[before[i] : before[j + 1]]):
                    best.append((s, e))
                    i = j + 1
                    found = True
                    break
            if not found:
                i += 1
        return [
            Finding("CREDIT_CARD", offset + s, offset + e, "privacy.credit_card") for s, e in best
        ]


# Lengths from the SWIFT IBAN registry.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

_IBAN_RUN = re.compile(r"[A-Z]{2}(?<![A-Za-z0-9][A-Z]{2})\d{2}(?:[ -]?[A-Za-z0-9]){11,30}")
_ALNUM = re.compile(r"[A-Za-z0-9]")


def iban_ok(iban: str) -> bool:
    """``iban`` without separators: known country, right length, ``mod 97 == 1``."""
    iban = iban.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


class IbanDetector:
    name = "iban"

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        out: list[Finding] = []
        if not index.has_digits(8):
            return out
        last_end = -1
        # an IBAN starts 2 letters before a digit run and may run on through letters ("WEST")
        for pos, endpos in index.digit_windows(2, 0):
            for m in _IBAN_RUN.finditer(text, pos, min(len(text), endpos + 45)):
                if m.start() < last_end:
                    continue
                found = self._check(text, m)
                if found:
                    out.append(found)
                    last_end = found.end
        return out

    @staticmethod
    def _check(text: str, m: re.Match[str]) -> Finding | None:
        length = IBAN_LENGTHS.get(m.group()[:2])
        if length is None:
            return None
        chars = list(_ALNUM.finditer(text, m.start(), m.end()))
        if len(chars) < length:
            return None
        end = chars[length - 1].end()
        if end < len(text) and text[end].isalnum():
            return None  # glued to more letters/digits: not a whole IBAN
        if iban_ok("".join(c.group() for c in chars[:length])):
            return Finding("IBAN", m.start(), end, "privacy.iban")
        return None


_SSN_SEP = re.compile(r"(\d{3})(?<![\w-]\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
_SSN_BARE = re.compile(r"(\d{3})(?<![\w-]\d{3})(\d{2})(\d{4})(?![\w-])")


def ssn_ok(area: str, group: str, serial: str) -> bool:
    a = int(area)
    return a not in {0, 666} and a < 900 and group != "00" and serial != "0000"


class SsnDetector:
    name = "us_ssn"

    def find(self, text: str, index: TextIndex) -> list[Finding]:
        out: list[Finding] = []
        if not index.has_digits(9):
            return out
        windows = index.digit_windows(1, 1)
        for pos, endpos in windows:
            out.extend(
                Finding("US_SSN", m.start(), m.end(), "privacy.us_ssn")
                for m in _SSN_SEP.finditer(text, pos, endpos)
                if ssn_ok(m.group(1), m.group(3), m.group(4))
            )
        context = find_all(index, "ssn") + find_all(index, "social security")
        if context:
            for pos, endpos in windows:
                if not any(0 <= pos - c <= 60 for c in context):
                    continue
                for m in _SSN_BARE.finditer(text, pos, endpos):
                    if ssn_ok(m.group(1), m.group(2), m.group(3)):
                        out.append(Finding("US_SSN", m.start(), m.end(), "privacy.us_ssn"))
        return out
